"""``pip-lambda-pack serve``: the store's functions behind the AWS Lambda API.

``api`` speaks the Lambda REST shapes, ``environments`` runs a process per execution
environment on the Runtime API it hosts (``bootstrap.py`` is their loop), ``catalog`` reads
the store's functions, ``deploy`` answers CreateFunction and UpdateFunctionCode, ``metrics``
is ``GET /metrics``, ``record`` is what the service keeps in the store (settings, usage),
and ``service`` runs it all until SIGTERM. Only ``record`` is imported by the rest of the
tool (``lock``/``plan`` read the observed usage); the others need the ``serve`` extra.
"""
