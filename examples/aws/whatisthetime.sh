#!/usr/bin/env bash
# Builds the "What is the time?" architecture through Flotilla's AWS API with the aws CLI —
# the same commands that would build it on AWS — and prints the URL that serves it.
#
#   FLOTILLA_AWS=http://127.0.0.1:4566 LISTENER_PORT=8081 bash whatisthetime.sh
set -euo pipefail
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_PAGER=""
endpoint="${FLOTILLA_AWS:-http://127.0.0.1:4566}"
port="${LISTENER_PORT:-8081}"
name="${NAME:-whatisthetime-cli}"
aws() { command aws --endpoint-url "$endpoint" "$@"; }

vpc=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)
subnets=$(aws ec2 describe-subnets --filters "Name=vpc-id,Values=$vpc" --query 'Subnets[].SubnetId' --output text)
template=$(aws ec2 create-launch-template --launch-template-name "$name" \
  --launch-template-data '{"ImageId":"ami-12c6146b","InstanceType":"t3.micro"}' \
  --query 'LaunchTemplate.LaunchTemplateId' --output text)
tg=$(aws elbv2 create-target-group --name "$name" --protocol HTTP --port 80 --vpc-id "$vpc" \
  --health-check-path /health --health-check-interval-seconds 5 --health-check-timeout-seconds 2 \
  --healthy-threshold-count 2 --unhealthy-threshold-count 2 \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
# shellcheck disable=SC2086 # one argument per subnet
lb=$(aws elbv2 create-load-balancer --name "$name" --subnets $subnets \
  --query 'LoadBalancers[0].[LoadBalancerArn,DNSName]' --output text)
lb_arn=$(cut -f1 <<<"$lb")
dns=$(cut -f2 <<<"$lb")
aws elbv2 create-listener --load-balancer-arn "$lb_arn" --protocol HTTP --port "$port" \
  --default-actions "Type=forward,TargetGroupArn=$tg" >/dev/null
aws autoscaling create-auto-scaling-group --auto-scaling-group-name "$name" \
  --launch-template "LaunchTemplateId=$template,Version=\$Latest" \
  --min-size 2 --max-size 6 --desired-capacity 2 \
  --vpc-zone-identifier "$(tr '\t' ',' <<<"$subnets")" \
  --target-group-arns "$tg" --health-check-type ELB --health-check-grace-period 10
aws autoscaling put-scaling-policy --auto-scaling-group-name "$name" --policy-name cpu-50 \
  --policy-type TargetTrackingScaling \
  --target-tracking-configuration '{"PredefinedMetricSpecification":{"PredefinedMetricType":"ASGAverageCPUUtilization"},"TargetValue":50.0}' >/dev/null

# Wait (at most a minute) until both instances pass their health checks.
for _ in $(seq 1 240); do
  healthy=$(aws elbv2 describe-target-health --target-group-arn "$tg" \
    --query 'length(TargetHealthDescriptions[?TargetHealth.State==`healthy`])' --output text)
  [ "$healthy" -ge 2 ] && break
  sleep 0.25
done
[ "$healthy" -ge 2 ] || { echo "the instances did not become healthy within a minute" >&2; exit 1; }
echo "http://$dns:$port/"
