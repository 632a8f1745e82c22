"""The official `mcp` SDK's client against the gateway's MCP endpoint.

`python client.py URL GAMMA_PID` runs each check below in order against the MCPRoute at URL (the
servers of servers.py behind it), printing `ok NAME` for each, and exits non-zero at the first
failure. `gamma_killed` kills the gamma server (GAMMA_PID) in the middle of a session.
"""

import asyncio
import json
import os
import signal
import sys
import traceback

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

URL = sys.argv[1]
GAMMA_PID = int(sys.argv[2])
GAMMA_TOOLS = [f"gamma__g{i}" for i in range(7)]
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"accept": "application/json, text/event-stream"}


def client(**kwargs) -> Client:
    headers = {"x-team": "ml", "authorization": "Bearer client-token-for-the-gateway"}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(URL, http_client=http), **kwargs)


async def all_tools(c: Client) -> list[str]:
    names, cursor = [], None
    while True:
        page = await c.list_tools(cursor=cursor, cache_mode="bypass")
        names.extend(t.name for t in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return names


async def initialize_and_list():
    async with client() as c:
        assert c.server_info.name == "aigw", c.server_info
        assert c.server_capabilities.tools is not None
        assert c.server_capabilities.prompts is not None, "alpha's prompts are offered"
        names = await all_tools(c)
        expected = {"alpha__echo", "alpha__add", "alpha__fail", "alpha__count", "alpha__headers",
                    "alpha__notify_added", "beta__echo", "beta__headers", *GAMMA_TOOLS}
        assert set(names) == expected, sorted(names)
        assert len(names) == len(set(names)), "each tool once across pages"
        assert "alpha__secret" not in names, "the selector hides it"


async def pages_merge_cursors():
    async with client() as c:
        first = await c.list_tools(cache_mode="bypass")
        assert first.next_cursor is not None, "gamma pages two at a time"
        firsts = {t.name for t in first.tools}
        assert "alpha__echo" in firsts and "beta__echo" in firsts
        assert {"gamma__g0", "gamma__g1"} <= firsts
        second = await c.list_tools(cursor=first.next_cursor, cache_mode="bypass")
        assert {t.name for t in second.tools} == {"gamma__g2", "gamma__g3"}, second.tools
        try:
            await c.list_tools(cursor="not-a-cursor", cache_mode="bypass")
            raise AssertionError("a bad cursor is refused")
        except MCPError as e:
            assert e.code == -32602, e


async def call_each_backend():
    async with client() as c:
        a = await c.call_tool("alpha__echo", {"text": "hi"})
        assert a.content[0].text == "alpha:hi", a
        b = await c.call_tool("beta__echo", {"text": "hi"})
        assert b.content[0].text == "beta:hi", b
        s = await c.call_tool("alpha__add", {"a": 2, "b": 40})
        assert s.content[0].text == "42", s
        g = await c.call_tool("gamma__g5", {})
        assert g.content[0].text == "gamma ran g5", g


async def filtered_and_unknown_tools():
    async with client() as c:
        for name in ["alpha__secret", "nobody__echo", "echo", "alpha__nope"]:
            try:
                result = await c.call_tool(name, {})
            except MCPError as e:
                if name == "alpha__nope":
                    raise AssertionError("an unknown tool of a known server reaches it") from e
                assert e.code == -32602 and name in e.error.message, e
                continue
            # The server itself answers for its own unknown tool.
            assert name == "alpha__nope" and result.is_error, (name, result)


async def tool_error():
    async with client() as c:
        result = await c.call_tool("alpha__fail", {})
        assert result.is_error, result
        assert "Error executing tool fail" in result.content[0].text, result


async def progress_streams():
    seen = []

    async def progress(value, total, message):
        seen.append((value, total, message))

    async with client() as c:
        result = await c.call_tool("alpha__count", {"n": 5}, progress_callback=progress)
        assert result.content[0].text == "counted to 5", result
        assert [v for v, _, _ in seen] == [1, 2, 3, 4, 5], seen
        assert seen[-1][2] == "step 5", seen


async def prompts_and_resources():
    async with client() as c:
        prompts = await c.list_prompts()
        assert [p.name for p in prompts.prompts] == ["alpha__greet"], prompts
        got = await c.get_prompt("alpha__greet", {"name": "Ada"})
        assert "Hello, Ada!" in got.messages[0].content.text, got
        resources = await c.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["alpha://readme"], resources
        read = await c.read_resource("alpha://readme")
        assert read.contents[0].text == "alpha readme", read


async def credentials_reach_their_server_only():
    async with client() as c:
        alpha = json.loads((await c.call_tool("alpha__headers", {})).content[0].text)
        beta = json.loads((await c.call_tool("beta__headers", {})).content[0].text)
        assert alpha.get("x-api-key") == "alpha-key", alpha
        assert beta.get("authorization") == "Bearer beta-key", beta
        assert "x-api-key" not in beta and alpha.get("authorization") is None, (alpha, beta)
        assert beta.get("x-team-forwarded") == "ml" and "x-team" not in alpha, (alpha, beta)


async def list_changed_relayed():
    changed = asyncio.Event()

    async def on_message(message):
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with client(message_handler=on_message) as c:
        # A server's notification outside a request goes to the session's GET stream and is
        # dropped while none is open (the transport's rule, gateway or not). The SDK opens its
        # GET in the background after initialize, and the gateway opens each server's when the
        # client's arrives, so under load the first call can come before them: asked again.
        for _ in range(5):
            await c.call_tool("alpha__notify_added", {})
            try:
                await asyncio.wait_for(changed.wait(), 2)
                break
            except asyncio.TimeoutError:
                pass
        assert changed.is_set(), "notifications/tools/list_changed was relayed"
        names = await all_tools(c)
        assert "alpha__added" in names, names


async def gamma_killed():
    async with client() as c:
        assert "gamma__g0" in await all_tools(c)
        os.kill(GAMMA_PID, signal.SIGKILL)
        await asyncio.sleep(0.3)
        names = await all_tools(c)
        assert not any(n.startswith("gamma__") for n in names), names
        assert "alpha__echo" in names and "beta__echo" in names, names
        try:
            await c.call_tool("gamma__g1", {})
            raise AssertionError("a call to a dead server fails")
        except MCPError as e:
            assert "gamma" in e.error.message, e
        again = await c.call_tool("alpha__echo", {"text": "still"})
        assert again.content[0].text == "alpha:still", again


async def session_deleted():
    http = httpx2.AsyncClient(timeout=30)
    init, accept = INIT, ACCEPT
    r = await http.post(URL, json=init, headers=accept)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["protocolVersion"] == "2025-06-18", r.text
    sid = r.headers["mcp-session-id"]
    headers = {**accept, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert (await http.post(URL, json=ping, headers=headers)).status_code == 200
    assert (await http.delete(URL, headers=headers)).status_code == 200
    after = await http.post(URL, json=ping, headers=headers)
    assert after.status_code == 404, (after.status_code, after.text)
    missing = await http.post(URL, json=ping, headers=accept)
    assert missing.status_code == 400, missing.text
    future = await http.post(URL, json=ping, headers={**accept, "mcp-protocol-version": "2099-01-01"})
    assert future.status_code == 400 and "Unsupported protocol version" in future.text, future.text
    # The SDK ends its session with DELETE when it closes.
    async with client() as c:
        await c.send_ping()


async def oauth():
    secure = os.environ["MCP_SECURE_URL"]
    plain = httpx2.AsyncClient(timeout=30)
    init, accept = INIT, ACCEPT
    refused = await plain.post(secure, json=init, headers=accept)
    assert refused.status_code == 401, refused.text
    challenge = refused.headers["www-authenticate"]
    metadata_url = "http://tools.aigw.test/.well-known/oauth-protected-resource/secure"
    assert f'resource_metadata="{metadata_url}"' in challenge, challenge
    assert "error=" not in challenge, "no error code without a token (RFC 6750)"
    wrong = await plain.post(secure, json=init, headers={**accept, "authorization": "Bearer not.a.token"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"], wrong.headers
    # The metadata is served without a token, where the challenge says (on this host).
    metadata = await plain.get(secure.replace("/secure", "/.well-known/oauth-protected-resource/secure"))
    assert metadata.status_code == 200, metadata.text
    document = metadata.json()
    assert document["resource"] == "http://tools.aigw.test/secure", document
    assert document["authorization_servers"] == ["https://issuer.aigw.test"], document
    assert document["scopes_supported"] == ["tools"], document
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {os.environ['MCP_TOKEN']}"}, timeout=30)
    async with Client(streamable_http_client(secure, http_client=http)) as c:
        names = sorted(t.name for t in (await c.list_tools()).tools)
        assert names == ["beta__echo", "beta__headers"], names
        seen = json.loads((await c.call_tool("beta__headers", {})).content[0].text)
        assert seen.get("x-user") == "mcp-user", seen
        assert seen.get("authorization") == "Bearer beta-key", ("the client token stays at the gateway", seen)
        # The session is bound to its caller: another subject's token cannot use its id.
    other = os.environ["MCP_OTHER_TOKEN"]
    owner = {**accept, "authorization": f"Bearer {os.environ['MCP_TOKEN']}"}
    opened = await plain.post(secure, json=init, headers=owner)
    sid = opened.headers["mcp-session-id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    mine = await plain.post(secure, json=ping, headers={**owner, "mcp-session-id": sid})
    assert mine.status_code == 200, mine.text
    theirs = await plain.post(secure, json=ping, headers={**accept, "authorization": f"Bearer {other}", "mcp-session-id": sid})
    assert theirs.status_code == 404, (theirs.status_code, theirs.text)


CHECKS = [oauth, initialize_and_list, pages_merge_cursors, call_each_backend, filtered_and_unknown_tools,
          tool_error, progress_streams, prompts_and_resources, credentials_reach_their_server_only,
          list_changed_relayed, session_deleted, gamma_killed]


async def main():
    only = os.environ.get("MCP_CHECKS")
    for check in CHECKS:
        if only and check.__name__ not in only.split(","):
            continue
        try:
            await asyncio.wait_for(check(), 60)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED {check.__name__}", flush=True)
            sys.exit(1)
        print(f"ok {check.__name__}", flush=True)


asyncio.run(main())
