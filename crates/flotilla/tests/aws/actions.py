"""Every action of Flotilla's AWS API with good and bad input, through boto3 (and raw
requests where botocore would refuse to send the bad input itself). Each bad call must
answer an AWS-shaped 4xx error with the modelled code and change nothing."""

import base64
import datetime
import os
import time

from harness import Checks, client, dump, raw

c = Checks()
ec2, elb, asg = client("ec2"), client("elbv2"), client("autoscaling")
PORT_A, PORT_B = (int(p) for p in os.environ["FLOTILLA_TEST_PORTS"].split(","))
AMI = "ami-12c6146b"


def ec2_actions():
    vpc = ec2.describe_vpcs()["Vpcs"]
    c.ok(len(vpc) == 1 and vpc[0]["IsDefault"], "DescribeVpcs", dump(vpc))
    c.error("InvalidVpcID.NotFound", "DescribeVpcs bad id", ec2.describe_vpcs, VpcIds=["vpc-0"])
    subnets = ec2.describe_subnets()["Subnets"]
    c.ok(len(subnets) == 2 and {s["AvailabilityZone"] for s in subnets} == {"us-east-1a", "us-east-1b"}, "DescribeSubnets", dump(subnets))
    c.error("InvalidSubnetID.NotFound", "DescribeSubnets bad id", ec2.describe_subnets, SubnetIds=["subnet-0"])
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    c.ok([z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b"], "DescribeAvailabilityZones", dump(zones))
    c.error("InvalidParameterValue", "DescribeAvailabilityZones bad zone", ec2.describe_availability_zones, ZoneNames=["mars-1a"])
    data = {"ImageId": AMI, "InstanceType": "t3.micro", "UserData": base64.b64encode(b"#!/bin/sh\necho hi\n").decode()}
    lt = ec2.create_launch_template(LaunchTemplateName="acts-lt", LaunchTemplateData=data, ClientToken="tok-1")["LaunchTemplate"]
    c.ok(lt["LaunchTemplateId"].startswith("lt-") and lt["LatestVersionNumber"] == 1, "CreateLaunchTemplate", dump(lt))
    again = ec2.create_launch_template(LaunchTemplateName="acts-lt", LaunchTemplateData=data, ClientToken="tok-1")["LaunchTemplate"]
    c.ok(again["LaunchTemplateId"] == lt["LaunchTemplateId"], "CreateLaunchTemplate ClientToken retry", dump(again))
    c.error("InvalidLaunchTemplateName.AlreadyExistsException", "CreateLaunchTemplate duplicate", ec2.create_launch_template, LaunchTemplateName="acts-lt", LaunchTemplateData=data)
    c.error("InvalidAMIID.NotFound", "CreateLaunchTemplate unknown image", ec2.create_launch_template, LaunchTemplateName="acts-other", LaunchTemplateData={"ImageId": "ami-0000dead"})
    c.error("InvalidAMIID.Malformed", "CreateLaunchTemplate malformed image", ec2.create_launch_template, LaunchTemplateName="acts-other", LaunchTemplateData={"ImageId": "img-1"})
    c.error("InvalidLaunchTemplateName.MalformedException", "CreateLaunchTemplate bad name", ec2.create_launch_template, LaunchTemplateName="bad name!", LaunchTemplateData=data)
    c.error("InvalidParameterValue", "CreateLaunchTemplate bad user data", ec2.create_launch_template, LaunchTemplateName="acts-other", LaunchTemplateData={"ImageId": AMI, "UserData": "%%%"})
    v2 = ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="1", VersionDescription="v2", LaunchTemplateData={"InstanceType": "t3.small"})["LaunchTemplateVersion"]
    c.ok(v2["VersionNumber"] == 2 and v2["LaunchTemplateData"]["ImageId"] == AMI, "CreateLaunchTemplateVersion", dump(v2))
    c.error("InvalidLaunchTemplateId.NotFound", "CreateLaunchTemplateVersion unknown", ec2.create_launch_template_version, LaunchTemplateId="lt-00000000000000000", LaunchTemplateData={"ImageId": AMI})
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="acts-lt")["LaunchTemplateVersions"]
    c.ok([v["VersionNumber"] for v in versions] == [2, 1] and versions[1]["DefaultVersion"], "DescribeLaunchTemplateVersions", dump(versions))
    c.error("InvalidLaunchTemplateId.VersionNotFound", "DescribeLaunchTemplateVersions bad version", ec2.describe_launch_template_versions, LaunchTemplateName="acts-lt", Versions=["9"])
    m = ec2.modify_launch_template(LaunchTemplateName="acts-lt", DefaultVersion="2")["LaunchTemplate"]
    c.ok(m["DefaultVersionNumber"] == 2, "ModifyLaunchTemplate", dump(m))
    c.error("InvalidLaunchTemplateId.VersionNotFound", "ModifyLaunchTemplate bad version", ec2.modify_launch_template, LaunchTemplateName="acts-lt", DefaultVersion="7")
    names = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    c.ok("acts-lt" in names and "file-lt" in names, "DescribeLaunchTemplates (API and file)", dump(names))
    c.error("InvalidLaunchTemplateName.NotFoundException", "DescribeLaunchTemplates unknown", ec2.describe_launch_templates, LaunchTemplateNames=["nope-lt"])
    c.error("OperationNotPermitted", "DeleteLaunchTemplate of the file", ec2.delete_launch_template, LaunchTemplateName="file-lt")
    tmp = ec2.create_launch_template(LaunchTemplateName="acts-tmp", LaunchTemplateData={"ImageId": AMI})["LaunchTemplate"]
    d = ec2.delete_launch_template(LaunchTemplateId=tmp["LaunchTemplateId"])["LaunchTemplate"]
    c.ok(d["LaunchTemplateName"] == "acts-tmp", "DeleteLaunchTemplate", dump(d))
    c.error("InvalidLaunchTemplateId.NotFound", "DeleteLaunchTemplate again", ec2.delete_launch_template, LaunchTemplateId=tmp["LaunchTemplateId"])
    c.error("InvalidInstanceID.NotFound", "DescribeInstances unknown id", ec2.describe_instances, InstanceIds=["i-000000000000"])
    c.error("InvalidParameterValue", "DescribeInstances bad filter", ec2.describe_instances, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    return lt, subnets


def elbv2_actions(vpc_id, subnets):
    tg_args = dict(Protocol="HTTP", Port=80, VpcId=vpc_id, HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2, Matcher={"HttpCode": "200-299"})
    tg = elb.create_target_group(Name="acts-tg", Tags=[{"Key": "app", "Value": "web"}], **tg_args)["TargetGroups"][0]
    c.ok(tg["TargetGroupArn"].split(":targetgroup/")[1].startswith("acts-tg/") and tg["HealthCheckPort"] == "traffic-port", "CreateTargetGroup", dump(tg))
    same = elb.create_target_group(Name="acts-tg", **tg_args)["TargetGroups"][0]
    c.ok(same["TargetGroupArn"] == tg["TargetGroupArn"], "CreateTargetGroup identical is idempotent", dump(same))
    c.error("DuplicateTargetGroupName", "CreateTargetGroup same name other settings", elb.create_target_group, Name="acts-tg", **{**tg_args, "Port": 81})
    c.error("DuplicateTargetGroupName", "CreateTargetGroup a file name", elb.create_target_group, Name="file-tg", **tg_args)
    c.error("ValidationError", "CreateTargetGroup bad name", elb.create_target_group, Name="-bad-", **tg_args)
    c.error("ValidationError", "CreateTargetGroup interval <= timeout", elb.create_target_group, Name="acts-x", **{**tg_args, "HealthCheckTimeoutSeconds": 5})
    c.error("ValidationError", "CreateTargetGroup HTTPS", elb.create_target_group, Name="acts-x", **{**tg_args, "Protocol": "HTTPS"})
    c.error("ValidationError", "CreateTargetGroup unknown VPC", elb.create_target_group, Name="acts-x", **{**tg_args, "VpcId": "vpc-0"})
    ip_tg = elb.create_target_group(Name="acts-ip", Protocol="HTTP", Port=8080, TargetType="ip")["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    page1 = elb.describe_target_groups(PageSize=1)
    c.ok(len(page1["TargetGroups"]) == 1 and "NextMarker" in page1, "DescribeTargetGroups PageSize", dump(page1))
    page2 = elb.describe_target_groups(PageSize=1, Marker=page1["NextMarker"])
    c.ok(page2["TargetGroups"][0]["TargetGroupArn"] != page1["TargetGroups"][0]["TargetGroupArn"], "DescribeTargetGroups Marker", dump(page2))
    c.error("TargetGroupNotFound", "DescribeTargetGroups unknown", elb.describe_target_groups, Names=["nope"])
    c.error("ValidationError", "DescribeTargetGroups bad marker", elb.describe_target_groups, Marker="xyz")
    mod = elb.modify_target_group(TargetGroupArn=arn, HealthCheckIntervalSeconds=6)["TargetGroups"][0]
    c.ok(mod["HealthCheckIntervalSeconds"] == 6, "ModifyTargetGroup", dump(mod))
    c.error("ValidationError", "ModifyTargetGroup threshold 11", elb.modify_target_group, TargetGroupArn=arn, HealthyThresholdCount=11)
    attrs = [{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}, {"Key": "stickiness.enabled", "Value": "true"}, {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"}]
    got = {a["Key"]: a["Value"] for a in elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=attrs)["Attributes"]}
    c.ok(got["deregistration_delay.timeout_seconds"] == "5" and got["stickiness.type"] == "lb_cookie", "ModifyTargetGroupAttributes", dump(got))
    c.error("ValidationError", "ModifyTargetGroupAttributes unknown key", elb.modify_target_group_attributes, TargetGroupArn=arn, Attributes=[{"Key": "no.such", "Value": "1"}])
    c.error("ValidationError", "ModifyTargetGroupAttributes bad value", elb.modify_target_group_attributes, TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "9999"}])
    file_tg = elb.describe_target_groups(Names=["file-tg"])["TargetGroups"][0]
    c.error("OperationNotPermitted", "ModifyTargetGroupAttributes of the file", elb.modify_target_group_attributes, TargetGroupArn=file_tg["TargetGroupArn"], Attributes=attrs[:1])
    da = {a["Key"] for a in elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    c.ok("slow_start.duration_seconds" in da and "stickiness.lb_cookie.duration_seconds" in da, "DescribeTargetGroupAttributes", dump(da))
    c.error("TargetGroupNotFound", "DescribeTargetGroupAttributes unknown", elb.describe_target_group_attributes, TargetGroupArn=arn + "0")
    elb.register_targets(TargetGroupArn=ip_tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.1", "Port": PORT_B}])
    th = elb.describe_target_health(TargetGroupArn=ip_tg["TargetGroupArn"])["TargetHealthDescriptions"]
    c.ok(len(th) == 1 and th[0]["Target"]["Port"] == PORT_B, "RegisterTargets + DescribeTargetHealth", dump(th))
    c.error("InvalidTarget", "RegisterTargets bad id", elb.register_targets, TargetGroupArn=ip_tg["TargetGroupArn"], Targets=[{"Id": "not-an-ip"}])
    elb.deregister_targets(TargetGroupArn=ip_tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.1", "Port": PORT_B}])
    c.error("InvalidTarget", "DeregisterTargets not registered", elb.deregister_targets, TargetGroupArn=ip_tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.2", "Port": 1}])
    c.error("InvalidTarget", "DescribeTargetHealth unknown instance", elb.describe_target_health, TargetGroupArn=arn, Targets=[{"Id": "i-000000000000"}])
    lb = elb.create_load_balancer(Name="acts-lb", Subnets=[s["SubnetId"] for s in subnets], Tags=[{"Key": "k", "Value": "v"}])["LoadBalancers"][0]
    c.ok(lb["State"]["Code"] == "active" and "/app/acts-lb/" in lb["LoadBalancerArn"], "CreateLoadBalancer", dump(lb))
    again = elb.create_load_balancer(Name="acts-lb", Subnets=[s["SubnetId"] for s in subnets])["LoadBalancers"][0]
    c.ok(again["LoadBalancerArn"] == lb["LoadBalancerArn"], "CreateLoadBalancer identical is idempotent", dump(again))
    c.error("SubnetNotFound", "CreateLoadBalancer unknown subnet", elb.create_load_balancer, Name="acts-lb2", Subnets=["subnet-0"])
    c.error("ValidationError", "CreateLoadBalancer one subnet", elb.create_load_balancer, Name="acts-lb2", Subnets=[subnets[0]["SubnetId"]])
    c.error("ValidationError", "CreateLoadBalancer bad name", elb.create_load_balancer, Name="internal-x")
    lbs = elb.describe_load_balancers(Names=["acts-lb"])["LoadBalancers"]
    c.ok(len(lbs) == 1, "DescribeLoadBalancers", dump(lbs))
    c.error("LoadBalancerNotFound", "DescribeLoadBalancers unknown", elb.describe_load_balancers, Names=["nope"])
    la = elb.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "30"}])["Attributes"]
    c.ok({"Key": "idle_timeout.timeout_seconds", "Value": "30"} in la, "ModifyLoadBalancerAttributes", dump(la))
    c.error("ValidationError", "ModifyLoadBalancerAttributes bad key", elb.modify_load_balancer_attributes, LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[{"Key": "nope", "Value": "1"}])
    c.ok(len(elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]) >= 3, "DescribeLoadBalancerAttributes")
    fwd = [{"Type": "forward", "TargetGroupArn": arn}]
    listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=PORT_A, DefaultActions=fwd)["Listeners"][0]
    c.ok(listener["Port"] == PORT_A, "CreateListener", dump(listener))
    c.error("LoadBalancerNotFound", "CreateListener unknown load balancer", elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"] + "x", Protocol="HTTP", Port=PORT_A, DefaultActions=fwd)
    c.error("DuplicateListener", "CreateListener port taken, other action", elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=PORT_A, DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    c.error("ValidationError", "CreateListener HTTPS", elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=PORT_B, DefaultActions=fwd)
    c.error("TargetGroupNotFound", "CreateListener unknown target group", elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=PORT_B, DefaultActions=[{"Type": "forward", "TargetGroupArn": arn + "0"}])
    ls = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    c.ok([l["ListenerArn"] for l in ls] == [listener["ListenerArn"]], "DescribeListeners", dump(ls))
    c.error("ListenerNotFound", "DescribeListeners unknown", elb.describe_listeners, ListenerArns=[listener["ListenerArn"] + "0"])
    ml = elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "none"}}])["Listeners"][0]
    c.ok(ml["DefaultActions"][0]["Type"] == "fixed-response", "ModifyListener", dump(ml))
    rule_args = dict(ListenerArn=listener["ListenerArn"], Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}, {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.com"]}}], Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": 80}, {"TargetGroupArn": ip_tg["TargetGroupArn"], "Weight": 20}], "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}}])
    rule = elb.create_rule(Priority=10, **rule_args)["Rules"][0]
    c.ok(rule["Priority"] == "10" and not rule["IsDefault"] and len(rule["Actions"][0]["ForwardConfig"]["TargetGroups"]) == 2, "CreateRule", dump(rule))
    c.error("PriorityInUse", "CreateRule priority taken", elb.create_rule, Priority=10, **rule_args)
    c.error("ValidationError", "CreateRule bad field", elb.create_rule, Priority=11, ListenerArn=listener["ListenerArn"], Conditions=[{"Field": "colour", "Values": ["red"]}], Actions=fwd)
    c.error("ValidationError", "CreateRule two path conditions", elb.create_rule, Priority=11, ListenerArn=listener["ListenerArn"], Conditions=[{"Field": "path-pattern", "Values": ["/a"]}, {"Field": "path-pattern", "Values": ["/b"]}], Actions=fwd)
    rule2 = elb.create_rule(Priority=20, ListenerArn=listener["ListenerArn"], Conditions=[{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["DELETE"]}}], Actions=[{"Type": "redirect", "RedirectConfig": {"Path": "/new/#{path}", "StatusCode": "HTTP_302"}}])["Rules"][0]
    rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    c.ok([r["Priority"] for r in rules] == ["10", "20", "default"] and rules[-1]["IsDefault"], "DescribeRules lists the default rule", dump(rules))
    c.error("RuleNotFound", "DescribeRules unknown", elb.describe_rules, RuleArns=[rule["RuleArn"] + "0"])
    mr = elb.modify_rule(RuleArn=rule2["RuleArn"], Conditions=[{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["PUT"]}}])["Rules"][0]
    c.ok(mr["Conditions"][0]["HttpRequestMethodConfig"]["Values"] == ["PUT"], "ModifyRule", dump(mr))
    sp = elb.set_rule_priorities(RulePriorities=[{"RuleArn": rule2["RuleArn"], "Priority": 5}])["Rules"]
    c.ok(sp[0]["Priority"] == "5", "SetRulePriorities", dump(sp))
    c.error("PriorityInUse", "SetRulePriorities clash", elb.set_rule_priorities, RulePriorities=[{"RuleArn": rule2["RuleArn"], "Priority": 10}])
    c.error("OperationNotPermitted", "DeleteRule default", elb.delete_rule, RuleArn=rules[-1]["RuleArn"])
    elb.delete_rule(RuleArn=rule2["RuleArn"])
    c.ok(len(elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]) == 2, "DeleteRule")
    elb.add_tags(ResourceArns=[arn], Tags=[{"Key": "team", "Value": "platform"}])
    elb.remove_tags(ResourceArns=[arn], TagKeys=["app"])
    tags = elb.describe_tags(ResourceArns=[arn, lb["LoadBalancerArn"]])["TagDescriptions"]
    c.ok(tags[0]["Tags"] == [{"Key": "team", "Value": "platform"}] and tags[1]["Tags"] == [{"Key": "k", "Value": "v"}], "AddTags, RemoveTags, DescribeTags", dump(tags))
    c.error("TargetGroupNotFound", "DescribeTags unknown", elb.describe_tags, ResourceArns=[arn + "0"])
    c.error("ResourceInUse", "DeleteTargetGroup in use", elb.delete_target_group, TargetGroupArn=arn)
    return tg, ip_tg, lb, listener


def autoscaling_actions(lt, tg, subnets):
    base = dict(LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"}, AvailabilityZones=["us-east-1a", "us-east-1b"])
    c.error("ValidationError", "CreateAutoScalingGroup min > max", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=3, MaxSize=2, **base)
    c.error("ValidationError", "CreateAutoScalingGroup desired > max", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=2, DesiredCapacity=5, **base)
    c.error("ValidationError", "CreateAutoScalingGroup unknown template", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=2, LaunchTemplate={"LaunchTemplateName": "nope-lt"}, AvailabilityZones=["us-east-1a"])
    c.error("ValidationError", "CreateAutoScalingGroup unknown zone", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=2, LaunchTemplate=base["LaunchTemplate"], AvailabilityZones=["us-east-1z"])
    c.error("ValidationError", "CreateAutoScalingGroup unknown target group", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=2, TargetGroupARNs=[tg["TargetGroupArn"] + "0"], **base)
    asg.create_auto_scaling_group(AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=3, DesiredCapacity=1, TargetGroupARNs=[tg["TargetGroupArn"]], DefaultCooldown=0, Tags=[{"Key": "app", "Value": "acts", "PropagateAtLaunch": True}], **base)
    c.error("AlreadyExists", "CreateAutoScalingGroup duplicate", asg.create_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=1, MaxSize=3, **base)
    g = wait_group("acts-asg", 1, instances=1)
    c.ok(g["MinSize"] == 1 and g["Tags"][0]["PropagateAtLaunch"], "CreateAutoScalingGroup + DescribeAutoScalingGroups", dump(g))
    c.ok(asg.describe_auto_scaling_groups(AutoScalingGroupNames=["nope"])["AutoScalingGroups"] == [], "DescribeAutoScalingGroups unknown is empty")
    inst = ec2.describe_instances(Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": ["acts-asg"]}])["Reservations"]
    c.ok(len(inst) == 1 and inst[0]["Instances"][0]["ImageId"] == "ami-12c6146b", "DescribeInstances by group tag", dump(inst))
    paging()
    asg.update_auto_scaling_group(AutoScalingGroupName="acts-asg", MaxSize=4, DesiredCapacity=2)
    g = wait_group("acts-asg", 2)
    c.ok(g["MaxSize"] == 4 and g["DesiredCapacity"] == 2, "UpdateAutoScalingGroup", dump(g))
    c.error("ValidationError", "UpdateAutoScalingGroup min > max", asg.update_auto_scaling_group, AutoScalingGroupName="acts-asg", MinSize=5)
    c.error("ValidationError", "UpdateAutoScalingGroup of the file", asg.update_auto_scaling_group, AutoScalingGroupName="file-asg", MaxSize=2)
    asg.set_desired_capacity(AutoScalingGroupName="acts-asg", DesiredCapacity=1)
    c.ok(wait_group("acts-asg", 1)["DesiredCapacity"] == 1, "SetDesiredCapacity")
    c.error("ValidationError", "SetDesiredCapacity above max", asg.set_desired_capacity, AutoScalingGroupName="acts-asg", DesiredCapacity=9)
    c.error("ValidationError", "SetDesiredCapacity unknown group", asg.set_desired_capacity, AutoScalingGroupName="nope", DesiredCapacity=1)
    tt = asg.put_scaling_policy(AutoScalingGroupName="acts-asg", PolicyName="cpu", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 50.0})
    c.ok(":scalingPolicy:" in tt["PolicyARN"] and len(tt["Alarms"]) == 2, "PutScalingPolicy target tracking", dump(tt))
    c.error("ValidationError", "PutScalingPolicy ALBRequestCountPerTarget without ResourceLabel", asg.put_scaling_policy, AutoScalingGroupName="acts-asg", PolicyName="rps", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget"}, "TargetValue": 100.0})
    c.error("ValidationError", "PutScalingPolicy unsupported metric", asg.put_scaling_policy, AutoScalingGroupName="acts-asg", PolicyName="net", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageNetworkIn"}, "TargetValue": 100.0})
    customized_metric()
    asg.put_scaling_policy(AutoScalingGroupName="acts-asg", PolicyName="steps", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity", MetricAggregationType="Average", StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 20.0, "ScalingAdjustment": 1}, {"MetricIntervalLowerBound": 20.0, "ScalingAdjustment": 2}])
    c.error("ValidationError", "PutScalingPolicy overlapping steps", asg.put_scaling_policy, AutoScalingGroupName="acts-asg", PolicyName="bad", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity", StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 20.0, "ScalingAdjustment": 1}, {"MetricIntervalLowerBound": 10.0, "ScalingAdjustment": 2}])
    asg.put_scaling_policy(AutoScalingGroupName="acts-asg", PolicyName="plus-one", PolicyType="SimpleScaling", AdjustmentType="ChangeInCapacity", ScalingAdjustment=1, Cooldown=0)
    pols = asg.describe_policies(AutoScalingGroupName="acts-asg")["ScalingPolicies"]
    c.ok(sorted(p["PolicyName"] for p in pols) == ["cpu", "plus-one", "steps"], "DescribePolicies", dump(pols))
    asg.execute_policy(AutoScalingGroupName="acts-asg", PolicyName="plus-one")
    c.ok(wait_group("acts-asg", 2)["DesiredCapacity"] == 2, "ExecutePolicy simple")
    asg.execute_policy(AutoScalingGroupName="acts-asg", PolicyName="steps", MetricValue=30.0, BreachThreshold=5.0)
    c.ok(wait_group("acts-asg", 4)["DesiredCapacity"] == 4, "ExecutePolicy step (+2 for a breach of 25)")
    c.error("ValidationError", "ExecutePolicy target tracking", asg.execute_policy, AutoScalingGroupName="acts-asg", PolicyName="cpu")
    asg.delete_policy(AutoScalingGroupName="acts-asg", PolicyName="cpu")
    c.error("ValidationError", "DeletePolicy again", asg.delete_policy, AutoScalingGroupName="acts-asg", PolicyName="cpu")
    acts = asg.describe_scaling_activities(AutoScalingGroupName="acts-asg")["Activities"]
    c.ok(len(acts) >= 3 and all(a["Cause"].startswith("At ") for a in acts) and acts[0]["StartTime"] >= acts[-1]["StartTime"], "DescribeScalingActivities", dump(acts[:2]))
    asg.put_scheduled_update_group_action(AutoScalingGroupName="acts-asg", ScheduledActionName="morning", Recurrence="0 8 * * MON-FRI", TimeZone="Europe/Berlin", DesiredCapacity=3)
    c.error("ValidationError", "PutScheduledUpdateGroupAction no sizes", asg.put_scheduled_update_group_action, AutoScalingGroupName="acts-asg", ScheduledActionName="x", Recurrence="0 8 * * *")
    c.error("ValidationError", "PutScheduledUpdateGroupAction bad cron", asg.put_scheduled_update_group_action, AutoScalingGroupName="acts-asg", ScheduledActionName="x", Recurrence="every day", MinSize=1)
    sa = asg.describe_scheduled_actions(AutoScalingGroupName="acts-asg")["ScheduledUpdateGroupActions"]
    c.ok(len(sa) == 1 and sa[0]["Recurrence"] == "0 8 * * MON-FRI" and ":scheduledUpdateGroupAction:" in sa[0]["ScheduledActionARN"], "DescribeScheduledActions", dump(sa))
    asg.delete_scheduled_action(AutoScalingGroupName="acts-asg", ScheduledActionName="morning")
    c.error("ValidationError", "DeleteScheduledAction again", asg.delete_scheduled_action, AutoScalingGroupName="acts-asg", ScheduledActionName="morning")
    asg.suspend_processes(AutoScalingGroupName="acts-asg", ScalingProcesses=["AZRebalance"])
    sus = wait_group("acts-asg", 4)["SuspendedProcesses"]
    c.ok([p["ProcessName"] for p in sus] == ["AZRebalance"], "SuspendProcesses", dump(sus))
    c.error("ValidationError", "SuspendProcesses unknown", asg.suspend_processes, AutoScalingGroupName="acts-asg", ScalingProcesses=["Dance"])
    asg.resume_processes(AutoScalingGroupName="acts-asg")
    c.ok(wait_group("acts-asg", 4)["SuspendedProcesses"] == [], "ResumeProcesses (all)")
    insts = asg.describe_auto_scaling_instances()["AutoScalingInstances"]
    mine = [i for i in insts if i["AutoScalingGroupName"] == "acts-asg"]
    c.ok(len(mine) >= 1, "DescribeAutoScalingInstances", dump(insts))
    victim = mine[0]["InstanceId"]
    asg.set_instance_protection(AutoScalingGroupName="acts-asg", InstanceIds=[victim], ProtectedFromScaleIn=True)
    c.ok(any(i["ProtectedFromScaleIn"] for i in wait_group("acts-asg", 4)["Instances"]), "SetInstanceProtection")
    c.error("ValidationError", "SetInstanceProtection foreign instance", asg.set_instance_protection, AutoScalingGroupName="acts-asg", InstanceIds=["i-000000000000"], ProtectedFromScaleIn=True)
    c.error("ValidationError", "SetInstanceHealth bad status", asg.set_instance_health, InstanceId=victim, HealthStatus="Sick")
    asg.set_instance_health(InstanceId=victim, HealthStatus="Healthy")
    act = asg.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=True)["Activity"]
    c.ok(act["StatusCode"] == "InProgress" and victim in act["Description"], "TerminateInstanceInAutoScalingGroup", dump(act))
    c.error("ValidationError", "TerminateInstanceInAutoScalingGroup unknown", asg.terminate_instance_in_auto_scaling_group, InstanceId="i-000000000000", ShouldDecrementDesiredCapacity=False)
    c.ok(wait_group("acts-asg", 3)["DesiredCapacity"] == 3, "terminate with decrement lowers desired")
    asg.put_lifecycle_hook(AutoScalingGroupName="acts-asg", LifecycleHookName="drain", LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING", HeartbeatTimeout=30, DefaultResult="CONTINUE")
    hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName="acts-asg")["LifecycleHooks"]
    c.ok(hooks and hooks[0]["GlobalTimeout"] == 3000, "PutLifecycleHook + DescribeLifecycleHooks", dump(hooks))
    c.error("ValidationError", "PutLifecycleHook bad transition", asg.put_lifecycle_hook, AutoScalingGroupName="acts-asg", LifecycleHookName="x", LifecycleTransition="autoscaling:EC2_INSTANCE_DANCING")
    c.error("ValidationError", "CompleteLifecycleAction with nothing waiting", asg.complete_lifecycle_action, AutoScalingGroupName="acts-asg", LifecycleHookName="drain", LifecycleActionResult="CONTINUE", InstanceId=victim)
    asg.delete_lifecycle_hook(AutoScalingGroupName="acts-asg", LifecycleHookName="drain")
    c.error("ValidationError", "DeleteLifecycleHook again", asg.delete_lifecycle_hook, AutoScalingGroupName="acts-asg", LifecycleHookName="drain")
    asg.put_warm_pool(AutoScalingGroupName="acts-asg", MinSize=1, PoolState="Running")
    wp = asg.describe_warm_pool(AutoScalingGroupName="acts-asg")
    c.ok(wp["WarmPoolConfiguration"]["MinSize"] == 1, "PutWarmPool + DescribeWarmPool", dump(wp))
    asg.delete_warm_pool(AutoScalingGroupName="acts-asg", ForceDelete=True)
    c.error("ValidationError", "DeleteWarmPool again", asg.delete_warm_pool, AutoScalingGroupName="acts-asg")
    rid = asg.start_instance_refresh(AutoScalingGroupName="acts-asg", Preferences={"MinHealthyPercentage": 50, "InstanceWarmup": 1})["InstanceRefreshId"]
    c.error("InstanceRefreshInProgress", "StartInstanceRefresh twice", asg.start_instance_refresh, AutoScalingGroupName="acts-asg")
    refs = asg.describe_instance_refreshes(AutoScalingGroupName="acts-asg")["InstanceRefreshes"]
    c.ok(refs[0]["InstanceRefreshId"] == rid, "StartInstanceRefresh + DescribeInstanceRefreshes", dump(refs))
    c.ok(asg.cancel_instance_refresh(AutoScalingGroupName="acts-asg")["InstanceRefreshId"] == rid, "CancelInstanceRefresh")
    c.error("ActiveInstanceRefreshNotFound", "CancelInstanceRefresh with none running", asg.cancel_instance_refresh, AutoScalingGroupName="acts-asg")
    c.error("ResourceInUse", "DeleteAutoScalingGroup with instances", asg.delete_auto_scaling_group, AutoScalingGroupName="acts-asg")
    c.error("ValidationError", "DeleteAutoScalingGroup unknown", asg.delete_auto_scaling_group, AutoScalingGroupName="nope")
    c.error("ValidationError", "DeleteAutoScalingGroup of the file", asg.delete_auto_scaling_group, AutoScalingGroupName="file-asg", ForceDelete=True)
    asg.delete_auto_scaling_group(AutoScalingGroupName="acts-asg", ForceDelete=True)
    c.ok(asg.describe_auto_scaling_groups(AutoScalingGroupNames=["acts-asg"])["AutoScalingGroups"] == [], "DeleteAutoScalingGroup ForceDelete")


def paging():
    """Auto Scaling MaxRecords/NextToken and EC2 MaxResults/NextToken through boto3: two pages
    of one, different, and a token not issued here refused (the file's group and acts-asg;
    the file's template and acts-lt)."""
    p1 = asg.describe_auto_scaling_groups(MaxRecords=1)
    p2 = asg.describe_auto_scaling_groups(MaxRecords=1, NextToken=p1.get("NextToken", ""))
    names = [g["AutoScalingGroupName"] for g in p1["AutoScalingGroups"] + p2["AutoScalingGroups"]]
    c.ok(len(p1["AutoScalingGroups"]) == 1 and "NextToken" in p1 and len(set(names)) == 2, "DescribeAutoScalingGroups MaxRecords/NextToken", dump(names))
    c.error("InvalidNextToken", "DescribeAutoScalingGroups foreign NextToken", asg.describe_auto_scaling_groups, NextToken="not-ours")
    c.error("ValidationError", "DescribeAutoScalingGroups MaxRecords 0", asg.describe_auto_scaling_groups, MaxRecords=0)
    e1 = ec2.describe_launch_templates(MaxResults=1)
    e2 = ec2.describe_launch_templates(MaxResults=1, NextToken=e1.get("NextToken", ""))
    lts = [t["LaunchTemplateName"] for t in e1["LaunchTemplates"] + e2["LaunchTemplates"]]
    c.ok(len(e1["LaunchTemplates"]) == 1 and "NextToken" in e1 and len(set(lts)) == 2, "DescribeLaunchTemplates MaxResults/NextToken", dump(lts))
    c.error("InvalidPaginationToken", "DescribeLaunchTemplates foreign NextToken", ec2.describe_launch_templates, NextToken="not-ours")


def customized_metric():
    """A customized metric specification maps onto Flotilla's metrics and is described back."""
    spec = {"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "Average",
            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "acts-asg"}]}
    asg.put_scaling_policy(AutoScalingGroupName="acts-asg", PolicyName="custom-cpu", PolicyType="TargetTrackingScaling",
                           TargetTrackingConfiguration={"CustomizedMetricSpecification": spec, "TargetValue": 60.0})
    got = asg.describe_policies(AutoScalingGroupName="acts-asg", PolicyNames=["custom-cpu"])["ScalingPolicies"]
    back = got[0]["TargetTrackingConfiguration"].get("CustomizedMetricSpecification", {}) if got else {}
    c.ok(back.get("MetricName") == "CPUUtilization" and back.get("Statistic") == "Average", "PutScalingPolicy customized metric", dump(got))
    c.error("ValidationError", "PutScalingPolicy customized metric Flotilla has not", asg.put_scaling_policy, AutoScalingGroupName="acts-asg",
            PolicyName="custom-bad", PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration={"CustomizedMetricSpecification": {**spec, "MetricName": "DiskReadOps"}, "TargetValue": 60.0})
    asg.delete_policy(AutoScalingGroupName="acts-asg", PolicyName="custom-cpu")


def wait_group(name, desired, timeout=60, instances=0):
    """The group once its desired capacity is `desired` and it lists `instances` instances
    or more (a hang guard, not a speed check: the deadline only ends a stuck test)."""
    deadline = time.time() + timeout
    while True:
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        done = g["DesiredCapacity"] == desired and len(g["Instances"]) >= instances
        if done or time.time() > deadline:
            return g
        time.sleep(0.2)


def protocol():
    """Raw requests: what botocore would not send. None of them may change anything."""
    before = len(elb.describe_target_groups()["TargetGroups"])
    cases = [
        ("malformed body", b"Action=CreateTargetGroup&Version=2015-12-01&Name=%ZZ", {}, 400, "MalformedQueryString"),
        ("unknown action", b"Action=LaunchRockets&Version=2015-12-01", {}, 400, "InvalidAction"),
        ("no action", b"Version=2015-12-01&Name=x", {}, 400, "MissingAction"),
        ("missing parameter", b"Action=CreateTargetGroup&Version=2015-12-01&Protocol=HTTP&Port=80", {}, 400, "MissingParameter"),
        ("wrong type", b"Action=CreateTargetGroup&Version=2015-12-01&Name=raw-x&Protocol=HTTP&Port=eighty", {}, 400, "ValidationError"),
        ("unknown version", b"Action=DescribeTargetGroups&Version=1999-01-01", {}, 400, "NoSuchVersion"),
        ("bad signature", b"Action=CreateTargetGroup&Version=2015-12-01&Name=raw-y&Protocol=HTTP&Port=80", {"secret": "wrong"}, 403, "SignatureDoesNotMatch"),
        ("expired date", b"Action=CreateTargetGroup&Version=2015-12-01&Name=raw-z&Protocol=HTTP&Port=80", {"when": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}, 403, "SignatureDoesNotMatch"),
        ("unsigned", b"Action=CreateTargetGroup&Version=2015-12-01&Name=raw-u&Protocol=HTTP&Port=80", {"sign": False}, 403, "MissingAuthenticationToken"),
        ("ec2 expired", b"Action=CreateLaunchTemplate&Version=2016-11-15&LaunchTemplateName=raw-lt&LaunchTemplateData.ImageId=ami-12c6146b", {"service": "ec2", "when": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)}, 400, "RequestExpired"),
        ("autoscaling missing parameter", b"Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=raw-g&MaxSize=1&AvailabilityZones.member.1=us-east-1a", {"service": "autoscaling"}, 400, "MissingParameter"),
    ]
    for name, body, kw, status, code in cases:
        got, headers, text = raw(body, **kw)
        rid = headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid")
        c.ok(got == status and f"<Code>{code}</Code>" in text and rid and rid in text, f"raw {name}", f"{got} {text[:300]}")
    got, _, text = raw(b"Action=DescribeTargetGroups&Version=2015-12-01")
    c.ok(got == 200 and "<DescribeTargetGroupsResult>" in text and "<RequestId>" in text, "raw signed request", text[:200])
    c.ok(len(elb.describe_target_groups()["TargetGroups"]) == before, "bad requests changed nothing")
    c.error("SignatureDoesNotMatch", "boto3 with a wrong secret", client("elbv2", secret="nope").describe_target_groups, status=403)


lt, subnets = ec2_actions()
tg, ip_tg, lb, listener = elbv2_actions(ec2.describe_vpcs()["Vpcs"][0]["VpcId"], subnets)
autoscaling_actions(lt, tg, subnets)
protocol()
elb.delete_listener(ListenerArn=listener["ListenerArn"])
c.error("ListenerNotFound", "DeleteListener again", elb.delete_listener, ListenerArn=listener["ListenerArn"])
elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
c.ok(True, "DeleteLoadBalancer (twice: a missing one succeeds)")
elb.delete_target_group(TargetGroupArn=ip_tg["TargetGroupArn"])
c.error("TargetGroupNotFound", "DeleteTargetGroup then describe", elb.describe_target_groups, TargetGroupArns=[ip_tg["TargetGroupArn"]])
c.finish()
