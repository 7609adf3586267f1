"""The whole workflow from boto3 against a running Flotilla, with real traffic: launch
template → target group → load balancer → listener → group over two zones → target tracking
policy → scaled out under load → instance refresh → everything deleted. Deadlines are hang
guards only; nothing is asserted about speed."""

import base64
import os
import re
import socket
import threading
import time
import urllib.request

from harness import Checks, client, dump

c = Checks()
ec2, elb, asg = client("ec2"), client("elbv2"), client("autoscaling")
PORT = int(os.environ["FLOTILLA_TEST_PORTS"].split(",")[0])


def until(what, fn, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.25)
    return fn()


vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
lt = ec2.create_launch_template(
    LaunchTemplateName="time-lt",
    LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro", "UserData": base64.b64encode(b"GREETING=hello").decode()},
)["LaunchTemplate"]
tg = elb.create_target_group(
    Name="time-tg", Protocol="HTTP", Port=80, VpcId=vpc, HealthCheckPath="/health",
    HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
)["TargetGroups"][0]
elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "1"}])
lb = elb.create_load_balancer(Name="time-lb", Subnets=subnets)["LoadBalancers"][0]
elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=PORT, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
asg.create_auto_scaling_group(
    AutoScalingGroupName="time-asg", LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
    MinSize=2, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=",".join(subnets), TargetGroupARNs=[tg["TargetGroupArn"]],
    HealthCheckType="ELB", HealthCheckGracePeriod=10,
)
waiter = elb.get_waiter("load_balancer_available")
waiter.wait(LoadBalancerArns=[lb["LoadBalancerArn"]], WaiterConfig={"Delay": 1, "MaxAttempts": 10})
c.ok(True, "load-balancer-available waiter")


def healthy():
    th = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    return [t for t in th if t["TargetHealth"]["State"] == "healthy"]


c.ok(len(until("two healthy", lambda: len(healthy()) >= 2 and healthy())) >= 2, "two targets healthy", dump(healthy()))
url = f"http://{lb['DNSName']}:{PORT}/"
seen = set()
for _ in range(20):
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    m = re.search(r"Served by (i-[0-9a-f]+) in (\S+?)\.", body)
    if m:
        seen.add(m.groups())
c.ok(len({i for i, _ in seen}) >= 2 and len({z for _, z in seen}) >= 2, "traffic answered by 2+ instances in 2+ zones", str(seen))

label = "{}/targetgroup/{}".format(lb["LoadBalancerArn"].split(":loadbalancer/")[1], tg["TargetGroupArn"].split(":targetgroup/")[1])
asg.put_scaling_policy(
    AutoScalingGroupName="time-asg", PolicyName="requests", PolicyType="TargetTrackingScaling", EstimatedInstanceWarmup=5,
    TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}, "TargetValue": 60.0},
)
stop = threading.Event()
sent = [0, 0]


def load():
    # Paced and bounded: about 40 requests a second, for at most 90 seconds.
    end = time.time() + 90
    while not stop.is_set() and time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            sent[0] += 1
        except Exception:
            sent[1] += 1
        time.sleep(0.025)


threads = [threading.Thread(target=load) for _ in range(2)]
for t in threads:
    t.start()
scaled = until("scale out", lambda: asg.describe_auto_scaling_groups(AutoScalingGroupNames=["time-asg"])["AutoScalingGroups"][0]["DesiredCapacity"] > 2, timeout=80)
stop.set()
for t in threads:
    t.join()
acts = asg.describe_scaling_activities(AutoScalingGroupName="time-asg")["Activities"]
c.ok(scaled, "scaled out under load", f"sent {sent}, activities {dump([a['Cause'] for a in acts[:3]])}")
c.ok(sent[1] == 0, "no failed request during the scale-out", f"sent {sent}")
c.ok(any("requests" in a["Cause"] for a in acts), "the scale-out's activity names the policy", dump([a["Cause"] for a in acts[:3]]))
desired = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["time-asg"])["AutoScalingGroups"][0]["DesiredCapacity"]
until("settled", lambda: len(healthy()) >= desired)

rid = asg.start_instance_refresh(AutoScalingGroupName="time-asg", Preferences={"MinHealthyPercentage": 50, "InstanceWarmup": 1})["InstanceRefreshId"]
done = until("refresh", lambda: asg.describe_instance_refreshes(AutoScalingGroupName="time-asg")["InstanceRefreshes"][0]["Status"] in ("Successful", "Failed", "Cancelled") and asg.describe_instance_refreshes(AutoScalingGroupName="time-asg")["InstanceRefreshes"][0], timeout=240)
c.ok(done and done["InstanceRefreshId"] == rid and done["Status"] == "Successful", "instance refresh succeeded", dump(done))

asg.delete_auto_scaling_group(AutoScalingGroupName="time-asg", ForceDelete=True)
gone = until("instances gone", lambda: not ec2.describe_instances(Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": ["time-asg"]}])["Reservations"], timeout=120)
c.ok(gone, "the group's instances drained and stopped")
for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
    elb.delete_listener(ListenerArn=l["ListenerArn"])
elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
ec2.delete_launch_template(LaunchTemplateId=lt["LaunchTemplateId"])


def closed():
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", PORT))
        return False
    except OSError:
        return True
    finally:
        s.close()


c.ok(until("port closed", closed, timeout=60), "the listener's port is closed after DeleteListener")
left = [t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"]]
c.ok("time-tg" not in left and elb.describe_load_balancers()["LoadBalancers"] == [] or all(l["LoadBalancerName"] != "time-lb" for l in elb.describe_load_balancers()["LoadBalancers"]), "everything deleted", dump(left))
c.finish()
