"""A long-lived boto3 application for the process-identity end-to-end test.

One client, several calls against moto_server, sleeping between them so its
CSM socket (botocore keeps one per client) stays open while the bridge looks
the sender up. CSM is turned on by the environment (AWS_CSM_ENABLED,
AWS_CSM_PORT, AWS_CSM_CLIENT_ID). Prints its pid first, then "done".
Usage: identity-boto3.py ENDPOINT_URL CALLS SLEEP_SECONDS
"""
import os
import sys
import time

import boto3

print(os.getpid(), flush=True)
endpoint, calls, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
for i in range(calls):
    if i == 0:
        s3.create_bucket(Bucket="identity-e2e")
    else:
        s3.list_objects_v2(Bucket="identity-e2e")
    time.sleep(pause)
print("done", flush=True)
# Keep the socket open a little longer: the last call's lookup may still be running.
time.sleep(pause)
