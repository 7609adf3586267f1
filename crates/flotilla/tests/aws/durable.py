"""Phase `create`: resources through the API. Phase `check` (after a restart): they are all
still there, with the same ids, and the listener serves again."""

import sys
import time
import urllib.request

from harness import Checks, client, dump

c = Checks()
ec2, elb, asg = client("ec2"), client("elbv2"), client("autoscaling")
port = int(sys.argv[2])
if sys.argv[1] == "create":
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
    lt = ec2.create_launch_template(LaunchTemplateName="keep-lt", LaunchTemplateData={"ImageId": "ami-12c6146b", "UserData": "dXNlciBkYXRhIGZvciBrZWVw"})["LaunchTemplate"]
    tg = elb.create_target_group(Name="keep-tg", Protocol="HTTP", Port=80, HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2)["TargetGroups"][0]
    lb = elb.create_load_balancer(Name="keep-lb", Subnets=subnets)["LoadBalancers"][0]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    asg.create_auto_scaling_group(AutoScalingGroupName="keep-asg", LaunchTemplate={"LaunchTemplateName": "keep-lt"}, MinSize=1, MaxSize=2, AvailabilityZones=["us-east-1a", "us-east-1b"], TargetGroupARNs=[tg["TargetGroupArn"]])
    asg.put_scaling_policy(AutoScalingGroupName="keep-asg", PolicyName="cpu", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 70.0})
    print("IDS", lt["LaunchTemplateId"], tg["TargetGroupArn"], lb["LoadBalancerArn"])
    c.ok(True, "created")
else:
    lt = ec2.describe_launch_templates(LaunchTemplateNames=["keep-lt"])["LaunchTemplates"][0]
    tg = elb.describe_target_groups(Names=["keep-tg"])["TargetGroups"][0]
    lb = elb.describe_load_balancers(Names=["keep-lb"])["LoadBalancers"][0]
    print("IDS", lt["LaunchTemplateId"], tg["TargetGroupArn"], lb["LoadBalancerArn"])
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["keep-asg"])["AutoScalingGroups"]
    c.ok(len(g) == 1 and g[0]["TargetGroupARNs"] == [tg["TargetGroupArn"]], "group kept", dump(g))
    pols = asg.describe_policies(AutoScalingGroupName="keep-asg")["ScalingPolicies"]
    c.ok([p["PolicyName"] for p in pols] == ["cpu"], "policy kept", dump(pols))
    deadline = time.time() + 60
    body = ""
    while time.time() < deadline and "Served by" not in body:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        except Exception as e:
            body = str(e)
            time.sleep(0.25)
    c.ok("Served by" in body, "the listener serves again after the restart", body)
c.finish()
