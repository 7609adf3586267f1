"""Times Flotilla's AWS API (see bench/aws-api.sh): raw Query requests over one keep-alive
connection, boto3 calls, and the admin API as the peer. Prints a Markdown table."""

import http.client
import statistics
import sys
import time

import boto3

aws_port, admin_port, listener_port, n = (int(a) for a in sys.argv[1:5])
kw = dict(endpoint_url=f"http://127.0.0.1:{aws_port}", region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
ec2, elb, asg = (boto3.client(s, **kw) for s in ("ec2", "elbv2", "autoscaling"))
subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
lt = ec2.create_launch_template(LaunchTemplateName="bench-lt", LaunchTemplateData={"ImageId": "ami-12c6146b"})["LaunchTemplate"]
tg = elb.create_target_group(Name="bench-tg", Protocol="HTTP", Port=80, HealthCheckPath="/health",
                             HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2)["TargetGroups"][0]
lb = elb.create_load_balancer(Name="bench-lb", Subnets=subnets)["LoadBalancers"][0]
elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=listener_port,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
asg.create_auto_scaling_group(AutoScalingGroupName="bench-asg", LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"]},
                              MinSize=2, MaxSize=4, AvailabilityZones=["us-east-1a", "us-east-1b"], TargetGroupARNs=[tg["TargetGroupArn"]])
time.sleep(2)


def timed(fn):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1], samples[-1]


def raw(port, method, path, *bodies):
    """A call sending each of `bodies` in turn (two that differ make every call a change)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    turn = [0]

    def call():
        body = bodies[turn[0] % len(bodies)] if bodies else None
        turn[0] += 1
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
    return call


tg_arn = tg["TargetGroupArn"]
rows = [
    ("peer: admin GET /v1/groups", raw(admin_port, "GET", "/v1/groups")),
    ("DescribeTargetGroups", raw(aws_port, "POST", "/", b"Action=DescribeTargetGroups&Version=2015-12-01")),
    ("DescribeTargetHealth", raw(aws_port, "POST", "/", f"Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn={tg_arn}".encode())),
    ("DescribeAutoScalingGroups", raw(aws_port, "POST", "/", b"Action=DescribeAutoScalingGroups&Version=2011-01-01")),
    ("DescribeLaunchTemplates", raw(aws_port, "POST", "/", b"Action=DescribeLaunchTemplates&Version=2016-11-15")),
    ("SetDesiredCapacity (2)", raw(aws_port, "POST", "/", b"Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=bench-asg&DesiredCapacity=2")),
    ("ModifyTargetGroup (a change, applied like a reload)", raw(aws_port, "POST", "/",
        f"Action=ModifyTargetGroup&Version=2015-12-01&TargetGroupArn={tg_arn}&HealthCheckIntervalSeconds=6".encode(),
        f"Action=ModifyTargetGroup&Version=2015-12-01&TargetGroupArn={tg_arn}&HealthCheckIntervalSeconds=5".encode())),
    ("boto3 describe_auto_scaling_groups", lambda: asg.describe_auto_scaling_groups(AutoScalingGroupNames=["bench-asg"])),
    ("boto3 describe_target_groups", lambda: elb.describe_target_groups(Names=["bench-tg"])),
]
results = [(name, *timed(fn)) for name, fn in rows]
peer_p99 = results[0][2]
print(f"| call ({n} each) | p50 ms | p99 ms | max ms | p99 / peer p99 |")
print("|---|---|---|---|---|")
for name, p50, p99, worst in results:
    print(f"| {name} | {p50:.3f} | {p99:.3f} | {worst:.3f} | {p99 / peer_p99:.2f} |")
