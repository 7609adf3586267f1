"""The recorded wire examples' calls, made the same way with boto3 against Flotilla: every
element of each recorded answer (`wire/*.xml`, botocore against moto) must be in Flotilla's
answer at the same place, except EC2 instance hardware Flotilla has no equivalent for."""

import os
import re
import sys

from harness import Checks, client, dump

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wire")
# Elements of the recorded DescribeInstances that describe EC2 hardware (volumes, network
# interfaces); Flotilla's instances are processes and do not invent them.
NOT_EMITTED = (
    "reservationSet/item/instancesSet/item/blockDeviceMapping",
    "reservationSet/item/instancesSet/item/networkInterfaceSet",
)

c = Checks()
ec2, elb, asg = client("ec2"), client("elbv2"), client("autoscaling")
bodies = {}


def capture(client_):
    def hook(operation_model=None, response_dict=None, **_):
        bodies[operation_model.name] = response_dict["body"].decode()
    client_.meta.events.register("before-parse", hook)


for cl in (ec2, elb, asg):
    capture(cl)


def paths(xml):
    """Element paths below the root, tolerant of the recordings' cut-off ends."""
    xml = re.sub(r"<\?xml[^>]*\?>|<!--.*?-->", "", xml, flags=re.S)
    stack, out = [], set()
    for m in re.finditer(r"<(/?)([A-Za-z][\w:.-]*)[^>]*?(/?)>", xml):
        closing, name, empty = m.groups()
        if closing:
            if stack and stack[-1] == name:
                stack.pop()
            continue
        if stack:
            out.add("/".join(stack[1:] + [name]))
        if not empty:
            stack.append(name)
    return out


def compare(recorded_file, ours):
    rec = open(os.path.join(WIRE, recorded_file)).read()
    missing = sorted(p for p in paths(rec) - paths(ours) if not p.startswith(NOT_EMITTED))
    c.ok(not missing, f"shape of {recorded_file}", f"missing {missing}")


def error_body(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except Exception as e:
        op = e.operation_name if hasattr(e, "operation_name") else ""
        return bodies.get(op, "")
    return ""


vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
data = {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro", "SecurityGroupIds": ["sg-7fa2cd98526c98dbd"], "UserData": "IyEvYmluL3NoCmVjaG8gaGk=",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "app", "Value": "web"}]}]}
lt = ec2.create_launch_template(LaunchTemplateName="flotilla-web-lt", VersionDescription="v1", LaunchTemplateData=data,
                                TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "platform"}]}])["LaunchTemplate"]
compare("10-CreateLaunchTemplate-200.xml", bodies["CreateLaunchTemplate"])
compare("11-CreateLaunchTemplate-400.xml", error_body(ec2.create_launch_template, LaunchTemplateName="flotilla-web-lt", LaunchTemplateData={"ImageId": "ami-12c6146b"}))
tg_args = dict(Name="flotilla-default", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance", Tags=[{"Key": "app", "Value": "web"}],
               HealthCheckProtocol="HTTP", HealthCheckPort="traffic-port", HealthCheckPath="/healthz", HealthCheckEnabled=True,
               HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=5, HealthyThresholdCount=3, UnhealthyThresholdCount=2, Matcher={"HttpCode": "200-299"})
tg = elb.create_target_group(**tg_args)["TargetGroups"][0]
compare("01-CreateTargetGroup-200.xml", bodies["CreateTargetGroup"])
# AWS answers an identical create with the existing group; the recorded error came from a
# different one, as here.
compare("05-CreateTargetGroup-400.xml", error_body(elb.create_target_group, **{**tg_args, "Port": 8081}))
attrs = [("deregistration_delay.timeout_seconds", "30"), ("slow_start.duration_seconds", "60"), ("stickiness.enabled", "true"),
         ("stickiness.type", "lb_cookie"), ("stickiness.lb_cookie.duration_seconds", "86400"), ("load_balancing.algorithm.type", "round_robin")]
elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": k, "Value": v} for k, v in attrs])
compare("03-ModifyTargetGroupAttributes-200.xml", bodies["ModifyTargetGroupAttributes"])
blue = elb.create_target_group(Name="flotilla-blue", Protocol="HTTP", Port=8080, VpcId=vpc)["TargetGroups"][0]
green = elb.create_target_group(Name="flotilla-green", Protocol="HTTP", Port=8080, VpcId=vpc)["TargetGroups"][0]
lb = elb.create_load_balancer(Name="flotilla-alb", Subnets=subnets)["LoadBalancers"][0]
port = int(os.environ["FLOTILLA_TEST_PORTS"].split(",")[0])
listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                               DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])["Listeners"][0]
compare("04-CreateListener-400.xml", error_body(elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"] + "x", Protocol="HTTP", Port=81,
                                                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]))
elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=10,
                Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}, {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.com"]}}],
                Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": blue["TargetGroupArn"], "Weight": 80}, {"TargetGroupArn": green["TargetGroupArn"], "Weight": 20}],
                                                               "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}}])
compare("02-CreateRule-200.xml", bodies["CreateRule"])
asg.create_auto_scaling_group(AutoScalingGroupName="flotilla-web-asg", LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
                              MinSize=2, MaxSize=6, DesiredCapacity=2, AvailabilityZones=["us-east-1a", "us-east-1b"], TargetGroupARNs=[tg["TargetGroupArn"]],
                              HealthCheckType="ELB", HealthCheckGracePeriod=60, DefaultCooldown=120, TerminationPolicies=["OldestLaunchTemplate", "Default"],
                              Tags=[{"Key": "app", "Value": "web", "PropagateAtLaunch": True}])
compare("06-CreateAutoScalingGroup-200.xml", bodies["CreateAutoScalingGroup"])
asg.put_scaling_policy(AutoScalingGroupName="flotilla-web-asg", PolicyName="cpu-steps", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity",
                       MetricAggregationType="Average", EstimatedInstanceWarmup=60,
                       StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 20.0, "ScalingAdjustment": 1},
                                        {"MetricIntervalLowerBound": 20.0, "ScalingAdjustment": 2}])
compare("07-PutScalingPolicy-200.xml", bodies["PutScalingPolicy"])
import time
deadline = time.time() + 60
while time.time() < deadline:
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["flotilla-web-asg"])["AutoScalingGroups"][0]
    if len(g["Instances"]) >= 2:
        break
    time.sleep(0.25)
compare("08-DescribeAutoScalingGroups-200.xml", bodies["DescribeAutoScalingGroups"])
asg.describe_scaling_activities(AutoScalingGroupName="flotilla-web-asg")
compare("09-DescribeScalingActivities-200.xml", bodies["DescribeScalingActivities"])
ec2.describe_instances(Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": ["flotilla-web-asg"]}])
compare("12-DescribeInstances-200.xml", bodies["DescribeInstances"])
asg.delete_auto_scaling_group(AutoScalingGroupName="flotilla-web-asg", ForceDelete=True)
compare("13-DeleteAutoScalingGroup-400.xml", error_body(asg.delete_auto_scaling_group, AutoScalingGroupName="flotilla-web-asg"))
c.finish()
