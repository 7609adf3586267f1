"""Times Flotilla's AWS API against moto's server (see bench/aws-api.sh) in the same run.

Both endpoints get the same resources (launch template, target group, load balancer,
listener, a group of two), then every action is timed in ROUNDS rounds; in each round the
same calls go to Flotilla and then to moto, so a busy moment of the shared machine hits both
sides of one round's ratio. Each call is a raw Query request, SigV4-signed by botocore before
its clock starts (the client's signing is not in the figure; Flotilla verifies the signature,
moto does not), sent over one keep-alive connection per endpoint (moto's server closes it
after each answer, so its figure includes a reconnect). Prints a Markdown table:
p50/p99 per endpoint over all rounds and the median of the per-round p99 ratios.

    python aws_latency.py FLOTILLA_PORT MOTO_PORT LISTENER_PORT CALLS_PER_ACTION ROUNDS
"""

import http.client
import re
import statistics
import sys
import time
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

flotilla_port, moto_port, listener_port, n, rounds = (int(a) for a in sys.argv[1:6])
CREDS = Credentials("test", "test")
VERSIONS = {"ec2": "2016-11-15", "elasticloadbalancing": "2015-12-01", "autoscaling": "2011-01-01"}
AMI = "ami-12c6146b"


class Endpoint:
    """One server: boto3 clients for the setup, a keep-alive connection for the timed calls."""

    def __init__(self, name, port):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        kw = dict(endpoint_url=self.url, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
        self.ec2, self.elb, self.asg = (boto3.client(s, **kw) for s in ("ec2", "elbv2", "autoscaling"))
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def setup(self, listener_port):
        lt = self.ec2.create_launch_template(LaunchTemplateName="bench-lt", LaunchTemplateData={"ImageId": AMI})
        self.lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
        tg = self.elb.create_target_group(Name="bench-tg", Protocol="HTTP", Port=80, HealthCheckPath="/health",
                                          HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                                          VpcId=self.ec2.describe_vpcs()["Vpcs"][0]["VpcId"])["TargetGroups"][0]
        self.tg_arn = tg["TargetGroupArn"]
        subnets = [s["SubnetId"] for s in self.ec2.describe_subnets()["Subnets"]
                   if s["AvailabilityZone"] in ("us-east-1a", "us-east-1b")]
        lb = self.elb.create_load_balancer(Name="bench-lb", Subnets=subnets)["LoadBalancers"][0]
        self.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=listener_port,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": self.tg_arn}])
        self.asg.create_auto_scaling_group(AutoScalingGroupName="bench-asg", LaunchTemplate={"LaunchTemplateId": self.lt_id},
                                           MinSize=2, MaxSize=4, AvailabilityZones=["us-east-1a", "us-east-1b"],
                                           TargetGroupARNs=[self.tg_arn])

    def call(self, service, action, **params):
        """Signs the call, then times it; (ms, status)."""
        params = {"Action": action, "Version": VERSIONS[service], **params}
        body = urllib.parse.urlencode(params)
        req = AWSRequest(method="POST", url=self.url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(CREDS, service, "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
        t = time.perf_counter()
        self.conn.request("POST", "/", body=body, headers=headers)
        r = self.conn.getresponse()
        text = r.read()
        ms = (time.perf_counter() - t) * 1000
        if r.status != 200:
            raise SystemExit(f"{self.name} {action}: {r.status} {text[:300]!r}")
        arn = re.search(rb"<TargetGroupArn>([^<]+)</TargetGroupArn>", text)
        self.last_arn = arn.group(1).decode() if arn else None
        return ms


def actions(e):
    """(name, one turn): a turn returns the times of the calls it made."""
    turn = [0]

    def flip(a, b):
        turn[0] += 1
        return a if turn[0] % 2 else b

    def create_delete_tg():
        t1 = e.call("elasticloadbalancing", "CreateTargetGroup", Name="bench-tmp", Protocol="HTTP", Port="8080",
                    VpcId=e.vpc_id)
        t2 = e.call("elasticloadbalancing", "DeleteTargetGroup", TargetGroupArn=e.last_arn)
        return [t1, t2]

    return [
        ("DescribeAutoScalingGroups", lambda: [e.call("autoscaling", "DescribeAutoScalingGroups")]),
        ("DescribeTargetGroups", lambda: [e.call("elasticloadbalancing", "DescribeTargetGroups")]),
        ("DescribeTargetHealth", lambda: [e.call("elasticloadbalancing", "DescribeTargetHealth", TargetGroupArn=e.tg_arn)]),
        ("DescribeLaunchTemplates", lambda: [e.call("ec2", "DescribeLaunchTemplates")]),
        ("SetDesiredCapacity (same value)", lambda: [e.call("autoscaling", "SetDesiredCapacity",
                                                            AutoScalingGroupName="bench-asg", DesiredCapacity="2")]),
        ("UpdateAutoScalingGroup (MaxSize 4↔5, a change)", lambda: [e.call(
            "autoscaling", "UpdateAutoScalingGroup", AutoScalingGroupName="bench-asg", MaxSize=flip("5", "4"))]),
        ("CreateTargetGroup + DeleteTargetGroup", create_delete_tg),
    ]


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(len(s) * q + 0.5) - 1))]


def main():
    flotilla, moto = Endpoint("flotilla", flotilla_port), Endpoint("moto", moto_port)
    for i, e in enumerate((flotilla, moto)):
        e.setup(listener_port if i == 0 else 8080)
        e.vpc_id = e.ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    time.sleep(2)  # the group's first launches out of the way
    rows = {}
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for (name, f_turn), (_, m_turn) in zip(actions(flotilla), actions(moto)):
            got = {}
            for side, turn in (("flotilla", f_turn), ("moto", m_turn)):
                samples = []
                while len(samples) < per_round:
                    samples += turn()
                got[side] = samples
            r = rows.setdefault(name, {"flotilla": [], "moto": [], "ratios": []})
            r["flotilla"] += got["flotilla"]
            r["moto"] += got["moto"]
            r["ratios"].append(pct(got["flotilla"], 0.99) / pct(got["moto"], 0.99))
    print(f"| call ({per_round * rounds} per endpoint, {rounds} rounds) | Flotilla p50 ms | Flotilla p99 ms "
          "| moto p50 ms | moto p99 ms | Flotilla p99 / moto p99 (median of rounds) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        f, m = r["flotilla"], r["moto"]
        print(f"| {name} | {pct(f, .5):.2f} | {pct(f, .99):.2f} | {pct(m, .5):.2f} | {pct(m, .99):.2f} "
              f"| {statistics.median(r['ratios']):.2f} |")


main()
