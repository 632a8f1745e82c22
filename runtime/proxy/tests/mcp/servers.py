"""MCP servers written with the official `mcp` SDK (streamable HTTP), as the gateway's backends.

`python servers.py NAME` binds 127.0.0.1:0, prints `{"port": N}` on one line, and serves until it
is killed. The servers:

- alpha (MCPServer): echo, add, secret (hidden by the route's selector), fail (a tool error),
  count (a long-running tool that reports progress), headers (what reached the server), the
  prompt greet and the resource alpha://readme; it adds a tool at run time (notify_added) and
  tells its session's clients that the list changed.
- beta (MCPServer): echo (same name as alpha's: the prefixes keep them apart), headers.
- gamma (the low-level Server): seven tools served two to a page, to test merged cursors.
"""

import json
import socket
import sys

import anyio
import uvicorn

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer


def alpha() -> MCPServer:
    server = MCPServer("alpha")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"alpha:{text}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def secret() -> str:
        """Must never be reachable through the gateway."""
        return "the secret tool ran"

    @server.tool()
    def fail() -> str:
        """Always fails."""
        raise ValueError("fail was asked to fail")

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Counts to n, reporting progress at each step."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
            await anyio.sleep(0.05)
        return f"counted to {n}"

    @server.tool()
    def headers(ctx: Context) -> str:
        """The request headers this server received."""
        return json.dumps(dict(ctx.headers or {}))

    @server.tool()
    async def notify_added(ctx: Context) -> str:
        """Adds the tool `added` and tells the session the tool list changed."""
        server.add_tool(lambda: "added ran", name="added", description="Added at run time.")
        await ctx.session.send_tool_list_changed()
        return "added"

    @server.prompt()
    def greet(name: str) -> str:
        """A greeting."""
        return f"Hello, {name}!"

    @server.resource("alpha://readme")
    def readme() -> str:
        """Alpha's readme."""
        return "alpha readme"

    return server


def beta() -> MCPServer:
    server = MCPServer("beta")

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"beta:{text}"

    @server.tool()
    def headers(ctx: Context) -> str:
        """The request headers this server received."""
        return json.dumps(dict(ctx.headers or {}))

    return server


GAMMA_TOOLS = [f"g{i}" for i in range(7)]


def gamma() -> Server:
    async def list_tools(ctx, params):
        start = int(params.cursor) if params is not None and params.cursor else 0
        page = GAMMA_TOOLS[start : start + 2]
        more = start + 2 < len(GAMMA_TOOLS)
        return types.ListToolsResult(
            tools=[types.Tool(name=n, description=f"tool {n}", input_schema={"type": "object"}) for n in page],
            next_cursor=str(start + 2) if more else None,
        )

    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"gamma ran {params.name}")])

    return Server("gamma", on_list_tools=list_tools, on_call_tool=call_tool)


def main() -> None:
    name = sys.argv[1]
    server = {"alpha": alpha, "beta": beta, "gamma": gamma}[name]()
    app = server.streamable_http_app(streamable_http_path="/mcp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
