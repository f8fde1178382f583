"""The API's reference as a plain page (``/docs``), written from the app's OpenAPI description: every route
with its method, what it does, its parameters and answers. FastAPI's own page loads Swagger UI from a CDN,
which is blank offline; this one is served by the server itself, like the rest of the page."""

from html import escape
from typing import Any

METHODS = ("get", "post", "delete", "put", "patch")


def api_page(openapi: dict[str, Any]) -> str:
    """The HTML of the reference for an OpenAPI description."""
    info = openapi.get("info", {})
    routes = [
        _route(path, method, operation)
        for path, operations in openapi.get("paths", {}).items()
        for method, operation in operations.items()
        if method in METHODS
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(info.get('title', 'API'))}: API</title>"
        '<link rel="stylesheet" href="/static/style.css"></head><body><main>'
        f"<h1>{escape(info.get('title', 'API'))} {escape(str(info.get('version', '')))}: API</h1>"
        f"<p>{escape(info.get('description', ''))} Errors answer "
        '<code>{"error": "..."}</code> with a 4xx status. The description as JSON: '
        '<a href="/openapi.json">/openapi.json</a>; the page: <a href="/">/</a>.</p>'
        + "".join(routes)
        + "</main></body></html>\n"
    )


def _route(path: str, method: str, operation: dict[str, Any]) -> str:
    parameters = [
        f"<li><code>{escape(p['name'])}</code> ({escape(p.get('in', ''))}"
        f"{', required' if p.get('required') else ''}): {escape(p.get('description', ''))}</li>"
        for p in operation.get("parameters", [])
    ]
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        parameters.append(f"<li>body: {escape(', '.join(body))}</li>")
    answers = ", ".join(
        f"{escape(code)} {escape(answer.get('description', ''))}"
        for code, answer in operation.get("responses", {}).items()
    )
    text = operation.get("description") or operation.get("summary", "")
    listed = f"<ul>{''.join(parameters)}</ul>" if parameters else ""
    return (
        f"<section><h2><code>{method.upper()} {escape(path)}</code></h2><p>{escape(text)}</p>{listed}"
        f"<p>Answers: {answers}</p></section>"
    )
