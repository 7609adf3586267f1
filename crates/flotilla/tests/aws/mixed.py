"""MixedInstancesPolicy through boto3: a group created with a launch template, instance type
overrides and an On-Demand/Spot distribution launches that split (EC2 DescribeInstances
shows the Spot ones with InstanceLifecycle "spot") and runs the first override's type;
DescribeAutoScalingGroups returns the policy in AWS's shape; an update changes only what it
names; a plain LaunchTemplate ends the policy; bad input is refused and changes nothing."""

import time

from harness import Checks, client, dump

c = Checks()
ec2, asg = client("ec2"), client("autoscaling")
AMI = "ami-12c6146b"

lt = ec2.create_launch_template(LaunchTemplateName="mix-lt", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})["LaunchTemplate"]
spec = {"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"}
policy = {
    "LaunchTemplate": {"LaunchTemplateSpecification": spec, "Overrides": [{"InstanceType": "t3.small"}, {"InstanceType": "t3.medium"}]},
    "InstancesDistribution": {"OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 50, "SpotAllocationStrategy": "capacity-optimized"},
}
zones = ["us-east-1a", "us-east-1b"]


def group(name="mix-asg"):
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return found[0] if found else None


def split(name, want_total, timeout=60):
    """(On-Demand, Spot) of the group's running instances once `want_total` run (a hang guard
    deadline, not a speed check)."""
    deadline = time.time() + timeout
    while True:
        res = ec2.describe_instances(Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": [name]},
                                              {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        insts = [i for r in res for i in r["Instances"]]
        if len(insts) >= want_total or time.time() > deadline:
            spot = sum(1 for i in insts if i.get("InstanceLifecycle") == "spot")
            return len(insts) - spot, spot, insts
        time.sleep(0.2)


def bad_input():
    """Each refused with ValidationError; none creates or changes a group."""
    base = dict(MinSize=0, MaxSize=2, AvailabilityZones=zones)
    cases = [
        ("both LaunchTemplate and MixedInstancesPolicy", dict(LaunchTemplate=spec, MixedInstancesPolicy=policy)),
        ("neither LaunchTemplate nor MixedInstancesPolicy", {}),
        ("percentage above 100", dict(MixedInstancesPolicy={**policy, "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 101}})),
        ("unknown Spot strategy", dict(MixedInstancesPolicy={**policy, "InstancesDistribution": {"SpotAllocationStrategy": "cheapest-please"}})),
        ("unknown On-Demand strategy", dict(MixedInstancesPolicy={**policy, "InstancesDistribution": {"OnDemandAllocationStrategy": "random"}})),
        ("SpotInstancePools without lowest-price", dict(MixedInstancesPolicy={**policy, "InstancesDistribution": {"SpotAllocationStrategy": "capacity-optimized", "SpotInstancePools": 3}})),
        ("a weighted override", dict(MixedInstancesPolicy={**policy, "LaunchTemplate": {"LaunchTemplateSpecification": spec, "Overrides": [{"InstanceType": "t3.small", "WeightedCapacity": "2"}]}})),
        ("a duplicate override", dict(MixedInstancesPolicy={**policy, "LaunchTemplate": {"LaunchTemplateSpecification": spec, "Overrides": [{"InstanceType": "t3.small"}, {"InstanceType": "t3.small"}]}})),
        ("no launch template in the policy", dict(MixedInstancesPolicy={"InstancesDistribution": {"OnDemandBaseCapacity": 1}})),
        ("an unknown launch template", dict(MixedInstancesPolicy={"LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": "nope-lt"}}})),
        ("overrides on the file's template", dict(MixedInstancesPolicy={"LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": "file-lt"}, "Overrides": [{"InstanceType": "t3.small"}]}})),
    ]
    for name, kw in cases:
        c.error("ValidationError", f"CreateAutoScalingGroup {name}", asg.create_auto_scaling_group, AutoScalingGroupName="mix-bad", **base, **kw)
    c.ok(group("mix-bad") is None, "no bad create made a group")
    before = group()
    c.error("ValidationError", "UpdateAutoScalingGroup percentage above 100", asg.update_auto_scaling_group, AutoScalingGroupName="mix-asg",
            MixedInstancesPolicy={"InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 300}})
    c.error("ValidationError", "UpdateAutoScalingGroup both launch sources", asg.update_auto_scaling_group, AutoScalingGroupName="mix-asg",
            LaunchTemplate=spec, MixedInstancesPolicy=policy)
    c.error("ValidationError", "PutWarmPool on a mixed group", asg.put_warm_pool, AutoScalingGroupName="mix-asg", MinSize=1)
    after = group()
    c.ok(after["MixedInstancesPolicy"] == before["MixedInstancesPolicy"] and "WarmPoolConfiguration" not in after,
         "bad updates changed nothing", dump(after.get("MixedInstancesPolicy")))


asg.create_auto_scaling_group(AutoScalingGroupName="mix-asg", MixedInstancesPolicy=policy, MinSize=0, MaxSize=4,
                              DesiredCapacity=3, AvailabilityZones=zones, CapacityRebalance=True)
g = group()
m = g.get("MixedInstancesPolicy", {})
c.ok("LaunchTemplate" not in g and m.get("LaunchTemplate", {}).get("LaunchTemplateSpecification", {}).get("LaunchTemplateId") == lt["LaunchTemplateId"],
     "DescribeAutoScalingGroups: the policy's template, no top-level LaunchTemplate", dump(g))
c.ok([o["InstanceType"] for o in m["LaunchTemplate"]["Overrides"]] == ["t3.small", "t3.medium"], "Overrides returned in order", dump(m))
d = m["InstancesDistribution"]
c.ok(d == {"OnDemandAllocationStrategy": "prioritized", "OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 50,
           "SpotAllocationStrategy": "capacity-optimized"}, "InstancesDistribution with AWS's defaults filled in", dump(d))
c.ok(g["CapacityRebalance"] is True, "CapacityRebalance", dump(g))
od, spot, insts = split("mix-asg", 3)
c.ok((od, spot) == (2, 1), "3 launched: base 1 + 50 % of 2 On-Demand, 1 Spot", f"{od} On-Demand, {spot} Spot")
c.ok(len(insts) == 3 and all(i["InstanceType"] == "t3.small" for i in insts), "instances run the first override's type", dump(insts))
spot_only = ec2.describe_instances(Filters=[{"Name": "instance-lifecycle", "Values": ["spot"]}])["Reservations"]
c.ok(sum(len(r["Instances"]) for r in spot_only) == spot, "DescribeInstances filter instance-lifecycle=spot", dump(spot_only))

bad_input()

# An update names only the percentage: the overrides, base and strategy stay.
asg.update_auto_scaling_group(AutoScalingGroupName="mix-asg", MixedInstancesPolicy={"InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 0}}, DesiredCapacity=4)
d = group()["MixedInstancesPolicy"]["InstancesDistribution"]
c.ok(d["OnDemandPercentageAboveBaseCapacity"] == 0 and d["OnDemandBaseCapacity"] == 1 and d["SpotAllocationStrategy"] == "capacity-optimized",
     "UpdateAutoScalingGroup changes only what it names", dump(d))
od, spot, _ = split("mix-asg", 4)
c.ok((od, spot) == (2, 2), "the fourth launch is Spot (the base is met, 0 % above it On-Demand)", f"{od} On-Demand, {spot} Spot")

# A plain LaunchTemplate ends the policy.
asg.update_auto_scaling_group(AutoScalingGroupName="mix-asg", LaunchTemplate=spec)
g = group()
c.ok("MixedInstancesPolicy" not in g and g["LaunchTemplate"]["LaunchTemplateId"] == lt["LaunchTemplateId"], "UpdateAutoScalingGroup with LaunchTemplate ends the policy", dump(g))

# A group on the config file's template, with a distribution and no overrides.
asg.create_auto_scaling_group(AutoScalingGroupName="mix-file", MinSize=0, MaxSize=1, AvailabilityZones=zones,
                              MixedInstancesPolicy={"LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateName": "file-lt"}},
                                                    "InstancesDistribution": {"OnDemandPercentageAboveBaseCapacity": 0}})
f = group("mix-file")
c.ok(f and f["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateName"] == "file-lt"
     and f["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"] == [], "a mixed group on the file's template", dump(f))
for name in ("mix-asg", "mix-file"):
    asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
c.finish()
