"""Prepare (not send) an HTTP request with requests, and report what was loaded."""

from importlib.metadata import version

import requests


def handler(event, context):
    request = requests.Request(
        "GET", event.get("url", "https://example.com/"), params=event.get("params", {})
    ).prepare()
    return {
        "function": context.function_name,
        "url": request.url,
        "requests": version("requests"),
        "urllib3": version("urllib3"),
    }
