#!/usr/bin/env python3
"""Oracle for the provider request snapshots: do the bodies the gateway sends
validate against the providers' own SDK models?

    python validate.py FILE...

Each FILE is an insta snapshot named `<case>.<schema>.snap`: a YAML front-matter
block between a first line `---` and a closing line `---`, then JSON content
with a top-level "request": {"method", "path", "body"} (other keys such as
"response", "stream" or "error" are ignored). A file without a "request", or
whose "request" is a string (an error case), is skipped, and so is one whose
body is a string (the client's body passed on unchanged).

The `<schema>` part of the name (lowercased) picks the oracle:

  awsbedrock    /model/{modelId}/converse[-stream]: botocore's `bedrock-runtime`
                service model, operation Converse / ConverseStream (unknown
                members, types, required members, tagged unions, min
                constraints); /model/{modelId}/count-tokens: operation
                CountTokens, and an `input.invokeModel.body` is also decoded
                (base64, then JSON) and checked as for `awsanthropic`.
                `/invoke` paths (Titan embeddings) are skipped.
  anthropic     /v1/messages: anthropic.types.MessageCreateParams (the streaming
                or non-streaming variant by body["stream"]);
                /v1/messages/count_tokens: MessageCountTokensParams.
  gcpanthropic  Claude on Vertex AI (.../publishers/anthropic/models/{model}:
                rawPredict|streamRawPredict): anthropic_version must be
                `vertex-2023-10-16`; it is removed, `model` is taken from the
                path, and the rest validates as for `anthropic`.
  awsanthropic  Claude on Bedrock InvokeModel (/model/{modelId}/invoke[-with-
                response-stream]): anthropic_version must start with `bedrock-`,
                the body carries neither `model` (taken from the path) nor
                `stream`; likewise validated as for `anthropic`.
                /model/{modelId}/count-tokens: as for `awsbedrock`.
  gcpvertexai   Gemini generateContent / streamGenerateContent: each top-level
                key through google-genai's pydantic models (Content, Tool,
                ToolConfig, GenerationConfig, SafetySetting). Embedding paths
                (`:predict`, `:embedContent`) are skipped: the SDK builds those
                bodies by hand and has no model for them.
  openai        .../chat/completions: openai.types.chat.completion_create_params
                CompletionCreateParams (the streaming or non-streaming variant
                by body["stream"]); .../responses/input_tokens (an Anthropic
                client's count_tokens): openai.types.responses
                InputTokenCountParams.
  azureopenai   /openai/deployments/{deployment}/chat/completions?api-version=
                ...: as for `openai`; a body without `model` takes the
                deployment's name.

Any other schema (cohere, ...) is skipped. Within a validated schema, a path
the oracle has no model for is a failure, so that an unchecked request cannot
pass silently.

Output: one `FAIL <file>: <reason>` line per failing file, then
`validated N, skipped M, failed K` (N counts the files that passed). Exit status
1 if any file failed, 0 otherwise, 2 when no FILE is given.
"""

import base64
import binascii
import enum
import functools
import json
import os
import re
import sys
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit

import pydantic
from typing_extensions import (
    Annotated,
    NotRequired,
    Required,
    TypedDict,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

# The SDKs (botocore, anthropic, openai, google.genai) are imported where first
# needed: a run over one provider's snapshots does not pay for loading the others.


class Skip(Exception):
    """The file has nothing this oracle checks."""


class Invalid(Exception):
    """The request does not validate; the message says why."""


# --------------------------------------------------------------------------
# Snapshot files


def schema_of(path: str) -> str:
    """The `<schema>` of `<case>.<schema>.snap`, lowercased ('' if absent)."""
    name = os.path.basename(path)
    if name.endswith(".snap"):
        name = name[: -len(".snap")]
    _, dot, schema = name.rpartition(".")
    return schema.lower() if dot else ""


def snapshot_content(text: str) -> str:
    """What follows the insta front matter (`---` ... `---`)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise Invalid("not an insta snapshot: the first line is not `---`")
    for i in range(1, len(lines)):
        if lines[i].rstrip() == "---":
            return "".join(lines[i + 1 :])
    raise Invalid("not an insta snapshot: the front matter has no closing `---`")


def load_request(path: str) -> dict:
    """The snapshot's "request" object; Skip when there is none to check."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Invalid(f"cannot read: {e.strerror}") from None
    try:
        content = json.loads(snapshot_content(text))
    except json.JSONDecodeError as e:
        raise Invalid(f"snapshot content is not JSON: {e}") from None
    if not isinstance(content, dict):
        raise Invalid("snapshot content is not a JSON object")
    request = content.get("request")
    if request is None or isinstance(request, str):
        raise Skip()
    if not isinstance(request, dict):
        raise Invalid("request is neither an object nor a string")
    if isinstance(request.get("body"), str):
        raise Skip()  # "(the client's body, unchanged)": nothing was translated
    for key, kind, name in (("method", str, "a string"), ("path", str, "a string"), ("body", dict, "an object")):
        if not isinstance(request.get(key), kind):
            raise Invalid(f"request.{key} is missing or not {name}")
    return request


def route(path: str) -> str:
    """The path without its query string."""
    return urlsplit(path).path


def expect_method(request: dict, method: str) -> None:
    if request["method"] != method:
        raise Invalid(f"method {request['method']!r}, expected {method!r}")


# --------------------------------------------------------------------------
# Reporting pydantic errors
#
# The Anthropic params are unions of dozens of TypedDicts with no declared
# discriminator, so pydantic reports why the value fails *every* member. We keep
# only the member that came closest at each union, which is the one the author
# of the body meant.


def _step(node: Any, item: Any) -> tuple[bool, Any]:
    """Follow one location item into the raw data, if it is a key or index."""
    if isinstance(node, dict) and isinstance(item, str) and item in node:
        return True, node[item]
    if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
        return True, node[item]
    return False, None


def _prune(errors: list[dict], node: Any, depth: int) -> list[dict]:
    """Errors sharing loc[:depth], keeping the closest member at each union.

    A location item that is neither a key nor an index of the data is the tag
    of a union member pydantic tried (unless it is the last item: a missing
    field)."""
    kept: list[dict] = []
    by_key: dict[Any, list[dict]] = {}
    by_tag: dict[Any, list[dict]] = {}
    for err in errors:
        loc = err["loc"]
        if len(loc) == depth:
            kept.append(err)
            continue
        found, _ = _step(node, loc[depth])
        group = by_key if found or len(loc) == depth + 1 else by_tag
        group.setdefault(loc[depth], []).append(err)
    for item, group in by_key.items():
        kept += _prune(group, _step(node, item)[1], depth + 1)
    if by_tag:
        candidates = [_prune(group, node, depth + 1) for group in by_tag.values()]
        least = min(map(_score, candidates))
        best = [errs for errs in candidates if _score(errs) == least]
        kept += _merge_literals(best, depth) or best[0]
    return kept


def _score(errors: list[dict]) -> tuple[int, int]:
    """How far a union member is from the value, lower is closer: a member
    whose `type`/`role` literal does not match is a worse guess than one that
    only has a wrong field."""
    return sum(e["type"] == "literal_error" for e in errors), len(errors)


def _merge_literals(candidates: list[list[dict]], depth: int) -> Optional[list[dict]]:
    """When every closest member fails only on the same literal field (a
    `role` that is none of 'user', 'assistant', 'system'), one error naming
    all the accepted values, located without the member tag."""
    if len(candidates) < 2 or any(len(errs) != 1 for errs in candidates):
        return None
    errs = [errs[0] for errs in candidates]
    rest = {tuple(e["loc"][depth + 1 :]) for e in errs}
    if any(e["type"] != "literal_error" for e in errs) or len(rest) != 1:
        return None
    expected = [e.get("ctx", {}).get("expected", "?") for e in errs]
    merged = dict(errs[0])
    merged["loc"] = tuple(errs[0]["loc"][:depth]) + rest.pop()
    merged["msg"] = f"Input should be {', '.join(expected[:-1])} or {expected[-1]}"
    return [merged]


def _render_loc(loc: tuple, data: Any) -> str:
    """`messages[0].content[1]<TextBlockParam>.bogus` for an error location."""
    out = ""
    node = data
    for i, item in enumerate(loc):
        found, child = _step(node, item)
        if found:
            out += f"[{item}]" if isinstance(item, int) else f".{item}"
            node = child
        elif i == len(loc) - 1:
            out += f".{item}"
        else:
            out += f"<{item}>"
    return out.lstrip(".") or "<body>"


def _render_plain_loc(loc: tuple) -> str:
    """`contents[0].parts[1].inline_data` for a location of keys and indices."""
    return "".join(f"[{item}]" if isinstance(item, int) else f".{item}" for item in loc).lstrip(".")


def describe_errors(errors: list[dict], data: Any, limit: int = 8) -> str:
    """One line naming each (pruned) pydantic error against the raw data."""
    errors = _prune(errors, data, 0)
    parts = []
    for err in errors[:limit]:
        text = f"{_render_loc(tuple(err['loc']), data)}: {err['msg']}"
        if err["type"] not in ("extra_forbidden", "missing") and "input" in err:
            got = repr(err["input"])
            text += f" (got {got[:60] + '...' if len(got) > 60 else got})"
        parts.append(text)
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)


# --------------------------------------------------------------------------
# awsbedrock: botocore's service model


@functools.lru_cache(maxsize=None)
def bedrock_operation(name: str):
    import botocore.session

    service = botocore.session.get_session().get_service_model("bedrock-runtime")
    return service.operation_model(name)


def _wire_to_params(shape, value: Any, loc: str, problems: list[str]) -> Any:
    """Turn the REST-JSON body into the parameters botocore validates.

    Blobs travel base64-encoded in JSON, so they are decoded where the shape
    says blob (botocore would otherwise accept any str as a blob). JSON member
    names (`jsonName`) map back to member names. Document members are free-form
    JSON and are left alone; anything unknown is kept for the validator to
    report."""
    if shape.type_name == "structure" and not getattr(shape, "is_document_type", False):
        if not isinstance(value, dict):
            return value
        by_wire_name = {
            member.serialization.get("name", name): name
            for name, member in shape.members.items()
            if "location" not in member.serialization  # uri/header names are not JSON keys
        }
        out = {}
        for key, item in value.items():
            name = by_wire_name.get(key, key)
            member = shape.members.get(name)
            out[name] = (
                _wire_to_params(member, item, f"{loc}.{key}".lstrip("."), problems)
                if member is not None
                else item
            )
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [
            _wire_to_params(shape.member, item, f"{loc}[{i}]", problems)
            for i, item in enumerate(value)
        ]
    if shape.type_name == "map" and isinstance(value, dict):
        return {
            key: _wire_to_params(shape.value, item, f"{loc}.{key}", problems)
            for key, item in value.items()
        }
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            problems.append(f"{loc}: blob is not valid base64 ({e})")
            return b""
    return value


BEDROCK_OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}


def bedrock_problems(request: dict, operation_name: str, model_id: str) -> list[str]:
    """What botocore's ParamValidator finds wrong with the body as the input of
    `operation_name`, the path's modelId included."""
    operation = bedrock_operation(operation_name)
    expect_method(request, operation.http["method"])
    shape = operation.input_shape
    body = request["body"]

    problems: list[str] = []
    for key in body:
        member = shape.members.get(key)
        if member is not None and "location" in member.serialization:
            problems.append(
                f"{key}: bound to the request {member.serialization['location']}, not the body"
            )
    params = _wire_to_params(shape, body, "", problems)
    params["modelId"] = model_id

    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems += report.generate_report().splitlines()
    return problems


def count_tokens_problems(request: dict, model_id: str) -> list[str]:
    """CountTokens: botocore's checks, then the InvokeModel body inside
    `input.invokeModel.body` (a blob: base64 of the JSON body) checked as a
    Claude InvokeModel body (see validate_bedrock_anthropic_body)."""
    problems = bedrock_problems(request, "CountTokens", model_id)
    given = request["body"].get("input")
    invoke = given.get("invokeModel") if isinstance(given, dict) else None
    if not isinstance(invoke, dict) or not isinstance(invoke.get("body"), str):
        return problems  # botocore has said what is wrong, if anything
    try:
        raw = base64.b64decode(invoke["body"], validate=True)
    except (binascii.Error, ValueError):
        return problems  # reported by _wire_to_params
    try:
        inner = json.loads(raw)
    except ValueError as e:
        return problems + [f"input.invokeModel.body: not JSON ({e})"]
    if not isinstance(inner, dict):
        return problems + ["input.invokeModel.body: not a JSON object"]
    try:
        validate_bedrock_anthropic_body(inner, model_id)
    except Invalid as e:
        problems.append(f"input.invokeModel.body: {e}")
    return problems


def validate_awsbedrock(request: dict) -> None:
    path = route(request["path"])
    if path.endswith("/invoke"):
        raise Skip()  # InvokeModel for Titan embeddings: a model-specific body
    match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|count-tokens)", path)
    if not match:
        raise Invalid(f"no Bedrock oracle for path {path!r}")
    model_id = unquote(match.group(1))
    if match.group(2) == "count-tokens":
        problems = count_tokens_problems(request, model_id)
    else:
        problems = bedrock_problems(request, BEDROCK_OPERATIONS[match.group(2)], model_id)
    if problems:
        raise Invalid("; ".join(problems))


# --------------------------------------------------------------------------
# anthropic (and Claude on Vertex AI / Bedrock)


def _make_strict(tp: Any, seen: set) -> None:
    """Make every TypedDict and model reachable from `tp` reject unknown keys
    and coerce nothing, for this process.

    TypedDicts ignore extra keys by default, and the content-block unions also
    accept the SDK's response models (extra="allow"), so without this a block
    with a misspelt key would validate. Strict mode stops pydantic from
    accepting "10" for an int or 1 for a str. A type that declares its own
    `extra` (the tool `input_schema`, a free-form JSON schema) keeps it."""
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        if tp in seen:
            return
        seen.add(tp)
        tp.model_config = {**tp.model_config, "extra": "forbid", "strict": True}
        for field in tp.model_fields.values():
            _make_strict(field.annotation, seen)
        # The SDK's models defer building their schema, so their first build
        # takes the new config; one already built is rebuilt (after the models
        # it holds, which this recursion has just done).
        if tp.__pydantic_complete__:
            tp.model_rebuild(force=True)
    elif is_typeddict(tp):
        if tp in seen:
            return
        seen.add(tp)
        config = dict(tp.__dict__.get("__pydantic_config__") or {})
        config.setdefault("extra", "forbid")
        config["strict"] = True
        tp.__pydantic_config__ = config
        for hint in get_type_hints(tp, include_extras=True).values():
            _make_strict(hint, seen)
    else:  # Union, Optional, Annotated, Required, Iterable, List, Dict, ...
        for arg in get_args(tp):
            _make_strict(arg, seen)


@functools.lru_cache(maxsize=None)
def anthropic_types() -> dict[str, Any]:
    """The request TypedDicts, by endpoint, made strict (see _make_strict)."""
    from anthropic.types import message_count_tokens_params as count_params
    from anthropic.types import message_create_params as create_params

    # anthropic>=1.0 dropped temperature, top_p and top_k from its request
    # types, but the Messages API still accepts them on the models that support
    # sampling; the gateway may map OpenAI's sampling parameters onto them.
    class SamplingParams(TypedDict, total=False):
        temperature: Annotated[float, pydantic.Field(ge=0, le=1)]
        top_p: Annotated[float, pydantic.Field(ge=0, le=1)]
        top_k: Annotated[int, pydantic.Field(ge=0)]

    class MessageCreateParams(create_params.MessageCreateParamsNonStreaming, SamplingParams, total=False):
        pass

    class MessageCreateParamsStreaming(create_params.MessageCreateParamsStreaming, SamplingParams, total=False):
        pass

    types = {
        "create": MessageCreateParams,
        "create-stream": MessageCreateParamsStreaming,
        "count_tokens": count_params.MessageCountTokensParams,
    }
    seen: set = set()
    for tp in types.values():
        _make_strict(tp, seen)
    return types


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any, key: Optional[str] = None) -> Any:
    """A TypeAdapter for a TypedDict, or for one of its fields (None if the
    field is not declared)."""
    if key is None:
        return pydantic.TypeAdapter(tp)
    hint = get_type_hints(tp, include_extras=True).get(key)
    if hint is None:
        return None
    while get_origin(hint) in (Required, NotRequired):
        hint = get_args(hint)[0]
    try:
        return pydantic.TypeAdapter(hint, config=pydantic.ConfigDict(strict=True))
    except pydantic.PydanticUserError:  # a TypedDict or model has its own config
        return pydantic.TypeAdapter(hint)


def _drain(value: Any, loc: tuple, errors: list[dict]) -> None:
    """Validate the lazily validated parts of a result.

    Pydantic validates an `Iterable[...]` field (messages, tools, content
    blocks...) only as it is iterated, so iterate every one, collecting the
    errors at their place in the body."""
    if isinstance(value, dict):
        for key, item in value.items():
            _drain(item, loc + (key,), errors)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _drain(item, loc + (i,), errors)
    elif type(value).__name__ == "ValidatorIterator":
        iterator = iter(value)
        index = 0
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except pydantic.ValidationError as e:
                # The error's location starts with the item's index.
                errors += [{**err, "loc": loc + tuple(err["loc"])} for err in e.errors()]
            else:
                _drain(item, loc + (index,), errors)
            index += 1


def _validate_drained(adapter: Any, value: Any, loc: tuple, errors: list[dict]) -> bool:
    """Validate `value` fully (lazy parts included); False if it failed
    before anything could be drained."""
    try:
        result = adapter.validate_python(value)
    except pydantic.ValidationError as e:
        errors += [{**err, "loc": loc + tuple(err["loc"])} for err in e.errors()]
        return False
    _drain(result, loc, errors)
    return True


def validate_typed_body(tp: Any, body: dict) -> None:
    """Validate a body against a (strict) TypedDict, reporting every error."""
    errors: list[dict] = []
    if not _validate_drained(_adapter(tp), body, (), errors):
        # An error at the top stops pydantic before the lazy fields (messages,
        # tools, ...) are looked at: validate each remaining field on its own
        # so that one run reports everything.
        reported = {err["loc"][0] for err in errors if err["loc"]}
        for key, value in body.items():
            field = _adapter(tp, key)
            if key not in reported and field is not None:
                _validate_drained(field, value, (key,), errors)
    if errors:
        raise Invalid(describe_errors(errors, body))


def validate_anthropic_body(body: dict, endpoint: str) -> None:
    """Validate a Messages API body; endpoint is "messages" or "count_tokens"."""
    types = anthropic_types()
    if endpoint == "count_tokens":
        tp = types["count_tokens"]
    else:
        tp = types["create-stream" if body.get("stream") is True else "create"]
    validate_typed_body(tp, body)


def validate_anthropic(request: dict) -> None:
    expect_method(request, "POST")
    path = route(request["path"])
    if path.endswith("/v1/messages"):
        validate_anthropic_body(request["body"], "messages")
    elif path.endswith("/v1/messages/count_tokens"):
        validate_anthropic_body(request["body"], "count_tokens")
    else:
        raise Invalid(f"no Anthropic oracle for path {path!r}")


def _take_anthropic_version(body: dict, check: Callable[[str], bool], expected: str) -> dict:
    """The body without `anthropic_version`, after checking it."""
    version = body.get("anthropic_version")
    if not isinstance(version, str) or not check(version):
        raise Invalid(f"anthropic_version is {version!r}, expected {expected}")
    return {key: value for key, value in body.items() if key != "anthropic_version"}


def validate_gcpanthropic(request: dict) -> None:
    expect_method(request, "POST")
    path = route(request["path"])
    match = re.search(r"/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$", path)
    if not match:
        raise Invalid(f"no Vertex AI Anthropic oracle for path {path!r}")
    body = _take_anthropic_version(
        request["body"], lambda v: v == "vertex-2023-10-16", "'vertex-2023-10-16'"
    )
    model, method = unquote(match.group(1)), match.group(2)
    if model == "count-tokens":
        # Token counting names the model in the body, not the path.
        validate_anthropic_body(body, "count_tokens")
        return
    if "model" in body:
        raise Invalid("body carries `model`; Vertex AI takes it from the path")
    # streamRawPredict answers with SSE only when the body asks for a stream.
    streaming = body.get("stream") is True
    if streaming != (method == "streamRawPredict"):
        raise Invalid(f"{method} with stream={body.get('stream')!r}")
    validate_anthropic_body({**body, "model": model}, "messages")


def validate_bedrock_anthropic_body(body: dict, model_id: str) -> None:
    """A Claude InvokeModel body on Bedrock, the model being `model_id`."""
    body = _take_anthropic_version(
        body, lambda v: v.startswith("bedrock-"), "a string starting with 'bedrock-'"
    )
    if "model" in body:
        raise Invalid("body carries `model`; Bedrock takes it from the path")
    # Bedrock picks streaming by endpoint and rejects a `stream` key.
    if "stream" in body:
        raise Invalid("body carries `stream`; Bedrock streams by endpoint (invoke-with-response-stream)")
    # Bedrock takes beta flags in the body (there is no anthropic-beta header).
    betas = body.pop("anthropic_beta", [])
    if not (isinstance(betas, list) and all(isinstance(b, str) for b in betas)):
        raise Invalid(f"anthropic_beta is {betas!r}, expected a list of strings")
    validate_anthropic_body({**body, "model": model_id}, "messages")


def validate_awsanthropic(request: dict) -> None:
    expect_method(request, "POST")
    path = route(request["path"])
    match = re.fullmatch(r"/model/([^/]+)/(invoke|invoke-with-response-stream|count-tokens)", path)
    if not match:
        raise Invalid(f"no Bedrock Anthropic oracle for path {path!r}")
    model_id = unquote(match.group(1))
    if match.group(2) == "count-tokens":
        problems = count_tokens_problems(request, model_id)
        if problems:
            raise Invalid("; ".join(problems))
        return
    validate_bedrock_anthropic_body(request["body"], model_id)


# --------------------------------------------------------------------------
# gcpvertexai: google-genai's models


@functools.lru_cache(maxsize=None)
def gemini_fields() -> dict[str, tuple[str, Any]]:
    """Top-level generateContent keys: (shape, validator), shape one of
    "model", "list" (of models) or "value" (a strict TypeAdapter)."""
    from google.genai import types

    return {
        "contents": ("list", types.Content),
        "systemInstruction": ("model", types.Content),
        "tools": ("list", types.Tool),
        "toolConfig": ("model", types.ToolConfig),
        "generationConfig": ("model", types.GenerationConfig),
        "safetySettings": ("list", types.SafetySetting),
        # Also sent by the SDK's own Vertex AI request builder.
        "cachedContent": ("value", pydantic.TypeAdapter(str)),
        "labels": ("value", pydantic.TypeAdapter(dict[str, str])),
    }


def _check_wire_names(value: Any, raw: Any, loc: tuple, problems: list[str]) -> None:
    """What google-genai's models let through but the wire format does not
    promise: snake_case field names (the models populate by name as well as by
    camelCase alias) and enum values in another case (their enums are case
    insensitive). `value` is the validated model, `raw` the JSON it came from."""
    if isinstance(value, pydantic.BaseModel) and isinstance(raw, dict):
        fields = type(value).model_fields
        by_alias = {field.alias or name: name for name, field in fields.items()}
        for key, item in raw.items():
            if key in by_alias:
                _check_wire_names(getattr(value, by_alias[key]), item, loc + (key,), problems)
            elif key in fields:
                problems.append(
                    f"{_render_plain_loc(loc + (key,))}: snake_case name, the wire name is "
                    f"{fields[key].alias!r}"
                )
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (item, raw_item) in enumerate(zip(value, raw)):
            _check_wire_names(item, raw_item, loc + (i,), problems)
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, item in raw.items():
            if key in value:
                _check_wire_names(value[key], item, loc + (key,), problems)
    elif isinstance(value, enum.Enum) and isinstance(raw, str) and raw != value.value:
        problems.append(f"{_render_plain_loc(loc)}: enum value {raw!r} is not the canonical {value.value!r}")


def validate_gcpvertexai(request: dict) -> None:
    path = route(request["path"])
    if path.endswith(":predict") or "embedContent" in path:
        raise Skip()  # embeddings: google-genai has no model for these bodies
    if not re.search(r"/models/[^/:]+:(generateContent|streamGenerateContent)$", path):
        raise Invalid(f"no Gemini oracle for path {path!r}")
    expect_method(request, "POST")
    body = request["body"]
    fields = gemini_fields()

    problems: list[str] = []
    if "contents" not in body:
        problems.append("contents: Field required")
    for key, raw in body.items():
        if key not in fields:
            problems.append(f"{key}: unknown generateContent field")
            continue
        shape, validator = fields[key]
        if shape == "list":
            if not isinstance(raw, list):
                problems.append(f"{key}: expected a list, got {type(raw).__name__}")
                continue
            items = [((key, i), item) for i, item in enumerate(raw)]
        else:
            items = [((key,), raw)]
        for loc, item in items:
            try:
                if shape == "value":
                    validator.validate_python(item, strict=True)
                    continue
                # JSON mode decodes bytes fields (inlineData.data,
                # thoughtSignature) as base64, as the API does; python mode
                # would take any string as bytes.
                model = validator.model_validate_json(json.dumps(item), strict=True)
            except pydantic.ValidationError as e:
                problems.append(describe_errors(
                    [{**err, "loc": loc + tuple(err["loc"])} for err in e.errors()], body
                ))
                continue
            _check_wire_names(model, item, loc, problems)
    if problems:
        raise Invalid("; ".join(problems))


# --------------------------------------------------------------------------
# openai and azureopenai: the openai SDK's request TypedDicts


@functools.lru_cache(maxsize=None)
def openai_types() -> dict[str, Any]:
    """The chat completions and input token count TypedDicts, made strict (see
    _make_strict)."""
    from openai.types.chat import completion_create_params as create_params
    from openai.types.responses.input_token_count_params import InputTokenCountParams

    types = {
        "create": create_params.CompletionCreateParamsNonStreaming,
        "create-stream": create_params.CompletionCreateParamsStreaming,
        "input-tokens": InputTokenCountParams,
    }
    seen: set = set()
    for tp in types.values():
        _make_strict(tp, seen)
    return types


def validate_openai_body(body: dict) -> None:
    """Validate a chat completions body."""
    types = openai_types()
    validate_typed_body(types["create-stream" if body.get("stream") is True else "create"], body)


def validate_openai(request: dict) -> None:
    expect_method(request, "POST")
    path = route(request["path"])
    if path.endswith("/responses/input_tokens"):
        validate_typed_body(openai_types()["input-tokens"], request["body"])
    elif path.endswith("/chat/completions"):
        validate_openai_body(request["body"])
    else:
        raise Invalid(f"no OpenAI oracle for path {path!r}")


def validate_azureopenai(request: dict) -> None:
    expect_method(request, "POST")
    parts = urlsplit(request["path"])
    match = re.fullmatch(r"/openai/deployments/([^/]+)/chat/completions", parts.path)
    if not match:
        raise Invalid(f"no Azure OpenAI oracle for path {parts.path!r}")
    if not re.search(r"(?:^|&)api-version=[^&]+", parts.query):
        raise Invalid("the path has no api-version query parameter")
    body = request["body"]
    # Azure names the model by the deployment in the path; the SDK's
    # AzureOpenAI client still sends `model`, which the service ignores.
    if "model" not in body:
        body = {"model": unquote(match.group(1)), **body}
    validate_openai_body(body)


# --------------------------------------------------------------------------

VALIDATORS: dict[str, Callable[[dict], None]] = {
    "awsbedrock": validate_awsbedrock,
    "anthropic": validate_anthropic,
    "gcpanthropic": validate_gcpanthropic,
    "awsanthropic": validate_awsanthropic,
    "gcpvertexai": validate_gcpvertexai,
    "openai": validate_openai,
    "azureopenai": validate_azureopenai,
}


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: validate.py FILE...  (insta snapshots named <case>.<schema>.snap)", file=sys.stderr)
        return 2
    validated = skipped = failed = 0
    for path in argv:
        validator = VALIDATORS.get(schema_of(path))
        if validator is None:
            skipped += 1
            continue
        try:
            validator(load_request(path))
        except Skip:
            skipped += 1
        except Invalid as e:
            failed += 1
            reason = " ".join(str(e).split("\n"))
            print(f"FAIL {path}: {reason}")
        else:
            validated += 1
    print(f"validated {validated}, skipped {skipped}, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
