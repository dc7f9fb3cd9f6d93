"""ichido on AWS Lambda: the receiver and worker entry points, and a local stand-in for
Lambda's event-source pollers (``ichido aws local``).

Nothing here is imported by the core: boto3 and mangum are the optional ``ichido[aws]`` extra.
Deployed, the SAM template (``deploy/template.yaml``) points its two functions at
``ichido.aws.receiver.handler`` and ``ichido.aws.worker.sqs_handler`` (or ``streams_handler``).
"""
