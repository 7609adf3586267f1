#!/usr/bin/env python3
"""Builds the "What is the time?" architecture through Flotilla's AWS API with boto3 —
the same code that would build it on AWS: a launch template, a target group with health
checks, an application load balancer with a listener, and an auto scaling group of two to
six instances over two zones with a target tracking policy. Prints the URL that serves it.

    FLOTILLA_AWS=http://127.0.0.1:4566 LISTENER_PORT=8080 python3 whatisthetime.py
"""

import os
import sys
import time
import urllib.request

import boto3

endpoint = os.environ.get("FLOTILLA_AWS", "http://127.0.0.1:4566")
port = int(os.environ.get("LISTENER_PORT", "8080"))
kw = dict(
    endpoint_url=endpoint,
    region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
)
ec2, elbv2, autoscaling = (boto3.client(s, **kw) for s in ("ec2", "elbv2", "autoscaling"))

vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]

template = ec2.create_launch_template(
    LaunchTemplateName="whatisthetime",
    LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
)["LaunchTemplate"]
target_group = elbv2.create_target_group(
    Name="whatisthetime", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance",
    HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2, UnhealthyThresholdCount=2,
)["TargetGroups"][0]
elbv2.modify_target_group_attributes(
    TargetGroupArn=target_group["TargetGroupArn"],
    Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
)
lb = elbv2.create_load_balancer(Name="whatisthetime", Subnets=subnets, Type="application")["LoadBalancers"][0]
elbv2.create_listener(
    LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
    DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group["TargetGroupArn"]}],
)
autoscaling.create_auto_scaling_group(
    AutoScalingGroupName="whatisthetime",
    LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
    MinSize=2, MaxSize=6, DesiredCapacity=2,
    VPCZoneIdentifier=",".join(subnets),
    TargetGroupARNs=[target_group["TargetGroupArn"]],
    HealthCheckType="ELB", HealthCheckGracePeriod=10,
)
autoscaling.put_scaling_policy(
    AutoScalingGroupName="whatisthetime", PolicyName="cpu-50", PolicyType="TargetTrackingScaling",
    TargetTrackingConfiguration={
        "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
        "TargetValue": 50.0,
    },
)

# Wait (at most a minute) until both instances pass their health checks.
for _ in range(240):
    health = elbv2.describe_target_health(TargetGroupArn=target_group["TargetGroupArn"])
    if sum(t["TargetHealth"]["State"] == "healthy" for t in health["TargetHealthDescriptions"]) >= 2:
        break
    time.sleep(0.25)
else:
    sys.exit("the instances did not become healthy within a minute")

url = f"http://{lb['DNSName']}:{port}/"
print(urllib.request.urlopen(url, timeout=5).read().decode().strip(), file=sys.stderr)
print(url)
