"""Sample application for the docker-compose demo: a boto3 service making AWS
calls in a loop, with AWS SDK Client-Side Monitoring turned on by environment
only (the code knows nothing about CSM or OpenTelemetry):

  AWS_CSM_ENABLED=true AWS_CSM_HOST=<bridge IPv4> AWS_CSM_PORT=31000 AWS_CSM_CLIENT_ID=sample-app

botocore opens an AF_INET socket, so AWS_CSM_HOST must be an IPv4 address,
not a host name: docker-compose.yml gives the bridge a fixed address.

Each round: S3 create/put/get/list, a missing key (404), a missing DynamoDB
table (400) and STS GetCallerIdentity, against moto (ENDPOINT_URL).
ITERATIONS=0 (default) loops forever; PAUSE_SECONDS between rounds.
"""
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("ENDPOINT_URL", "http://moto:5000")
ITERATIONS = int(os.environ.get("ITERATIONS", "0"))
PAUSE = float(os.environ.get("PAUSE_SECONDS", "5"))
BUCKET = "sample-app"

config = Config(retries={"mode": "standard", "max_attempts": 3})
s3 = boto3.client("s3", endpoint_url=ENDPOINT, config=config)
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, config=config)
sts = boto3.client("sts", endpoint_url=ENDPOINT, config=config)


def one_round(n):
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as e:  # BucketAlreadyOwnedByYou outside us-east-1 after the first round
        print(f"create_bucket: {e.response['Error']['Code']}", flush=True)
    s3.put_object(Bucket=BUCKET, Key=f"round-{n}.txt", Body=f"round {n}".encode())
    s3.get_object(Bucket=BUCKET, Key=f"round-{n}.txt")["Body"].read()
    s3.list_objects_v2(Bucket=BUCKET, MaxKeys=10)
    try:
        s3.head_object(Bucket=BUCKET, Key="missing.txt")
    except ClientError as e:
        print(f"head_object: {e.response['Error']['Code']}", flush=True)
    try:
        ddb.describe_table(TableName="missing")
    except ClientError as e:
        print(f"describe_table: {e.response['Error']['Code']}", flush=True)
    sts.get_caller_identity()


def main():
    n = 0
    while ITERATIONS == 0 or n < ITERATIONS:
        n += 1
        one_round(n)
        print(f"round {n} done", flush=True)
        if ITERATIONS == 0 or n < ITERATIONS:
            time.sleep(PAUSE)
    # botocore sends CSM datagrams synchronously; nothing to flush.


if __name__ == "__main__":
    main()
