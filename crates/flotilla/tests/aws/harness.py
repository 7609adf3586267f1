"""Shared by the AWS API tests: clients for the endpoint under test, a SigV4 signer for raw
requests (bad signatures, expired dates, malformed bodies), and a check counter that ends
with the line `N passed, M failed`."""

import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["FLOTILLA_AWS_ENDPOINT"]
REGION = "us-east-1"
KEY, SECRET = os.environ.get("FLOTILLA_AWS_TEST_KEY", "test:test").split(":", 1)


def client(service, secret=SECRET):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def ok(self, cond, name, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed.append(f"{name}: {detail}")
            print(f"FAIL {name}: {detail}", flush=True)
        return cond

    def error(self, code, name, fn, *args, status=400, **kwargs):
        """`fn(*args, **kwargs)` must fail with `code` and HTTP `status`."""
        try:
            fn(*args, **kwargs)
        except ClientError as e:
            got = e.response["Error"]["Code"]
            http = e.response["ResponseMetadata"]["HTTPStatusCode"]
            rid = e.response["ResponseMetadata"].get("RequestId")
            return self.ok(
                got == code and http == status and bool(rid),
                name,
                f"wanted {code}/{status}, got {got}/{http} ({e.response['Error'].get('Message')}), request id {rid!r}",
            )
        return self.ok(False, name, f"wanted {code}, but the call succeeded")

    def finish(self):
        print(f"{self.passed} passed, {len(self.failed)} failed", flush=True)
        for f in self.failed:
            print("  " + f)
        sys.exit(1 if self.failed else 0)


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def raw(body, service="elasticloadbalancing", secret=SECRET, when=None, sign=True, method="POST"):
    """Sends `body` (bytes) as botocore would, signed with `secret` at `when` (UTC datetime);
    returns (status, headers, text)."""
    host = ENDPOINT.split("://", 1)[1]
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz[:8]
    ctype = "application/x-www-form-urlencoded; charset=utf-8"
    headers = {"Content-Type": ctype, "X-Amz-Date": amz}
    if sign:
        canonical = "\n".join([
            method, "/", "",
            f"content-type:{ctype}\nhost:{host}\nx-amz-date:{amz}\n",
            "content-type;host;x-amz-date",
            hashlib.sha256(body).hexdigest(),
        ])
        scope = f"{day}/{REGION}/{service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        k = _sign(("AWS4" + secret).encode(), day)
        k = _sign(k, REGION)
        k = _sign(k, service)
        k = _sign(k, "aws4_request")
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}, "
            f"SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
        )
    req = urllib.request.Request(ENDPOINT + "/", data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def dump(obj):
    return json.dumps(obj, default=str)[:400]
