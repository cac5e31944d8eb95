"""Requests checked against Qdrant's official OpenAPI spec for 1.19 (Apache-2.0; a gzipped copy of
``../shared/reference/qdrant/openapi-v1.19.json``, so the check runs anywhere): the path
exists with that method, every query parameter is declared and has the declared type, JSON bodies
validate against the request schema (required properties, types, enums), multipart bodies are
declared as such."""

import functools
import gzip
import json
import re
from pathlib import Path

import jsonschema

SPEC = Path(__file__).with_name("qdrant-openapi-v1.19.json.gz")


@functools.cache
def spec():
    with gzip.open(SPEC) as f:
        return json.load(f)


@functools.cache
def _templates():
    """[(compiled path pattern, path item)] with ``{param}`` matching one segment."""
    return [(re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))), item)
            for template, item in spec()["paths"].items()]


def _operation(method, path):
    matches = [item[method.lower()] for pattern, item in _templates()
               if pattern.fullmatch(path) and method.lower() in item]
    return matches[0] if matches else None


def _validator(schema):
    return jsonschema.Draft7Validator({**schema, "components": spec()["components"]})


def _query_value(value, schema):
    """A query string value as the type its schema declares, or the string if it has none."""
    if "$ref" in schema:
        schema = spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    kind = schema.get("type")
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    if kind == "integer":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    return value


def problems(requests):
    """What is wrong with recorded requests ``(method, path, query, JSON body, content type)``."""
    found = []
    for method, path, query, body, content_type in requests:
        where = f"{method} {path}"
        operation = _operation(method, path)
        if operation is None:
            found.append(f"{where}: no such operation in Qdrant's API")
            continue
        declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
        for name, value in query.items():
            if name not in declared:
                found.append(f"{where}: query parameter {name!r} is not declared")
                continue
            schema = declared[name].get("schema", {})
            for error in _validator(schema).iter_errors(_query_value(value, schema)):
                found.append(f"{where}: query parameter {name}={value!r}: {error.message}")
        found += [f"{where}: required query parameter {name!r} missing" for name, p in declared.items()
                  if p.get("required") and name not in query]
        content = operation.get("requestBody", {}).get("content", {})
        media = content_type.split(";")[0].strip()
        if body is not None or media:
            if media not in content:
                found.append(f"{where}: sends {media or 'a body'} where the API takes {', '.join(content) or 'none'}")
            elif media == "application/json":
                found += [f"{where}: body: {e.message} at {list(e.absolute_path)}"
                          for e in _validator(content[media]["schema"]).iter_errors(body)]
    return found
