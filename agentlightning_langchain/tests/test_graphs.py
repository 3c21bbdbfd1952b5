"""Real LangGraph graphs, tools and chains: the run tree, node agent names, per-node rewards."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManager
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from lc_spans import captured, output_parts, runs
from tenacity import Future, RetryCallState, Retrying

from agentlightning_core import OtelTracer, TracerTraceToTriplet, emit_reward, semconv
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_langchain import (
    PARENT_RUN_ID,
    RUN_ID,
    AsyncLightningCallbackHandler,
    LightningCallbackHandler,
)


class SqlState(TypedDict, total=False):
    question: str
    sql: str
    verdict: str


def sql_graph(llm: ChatOpenAI) -> Any:
    """Two nodes: write SQL, then check it (rewarded when the checker says "ok")."""

    def write_sql(state: SqlState) -> SqlState:
        return {"sql": str(llm.invoke(f"SQL for: {state['question']}").content)}

    def check_sql(state: SqlState) -> SqlState:
        verdict = str(llm.invoke(f"Check: {state['sql']}").content)
        emit_reward(1.0 if verdict == "ok" else 0.0)
        return {"verdict": verdict}

    graph = StateGraph(SqlState)
    graph.add_node("write_sql", write_sql)
    graph.add_node("check_sql", check_sql)
    graph.add_edge(START, "write_sql")
    graph.add_edge("write_sql", "check_sql")
    graph.add_edge("check_sql", END)
    return graph.compile()


SCRIPT = [
    Reply(content="SELECT count(*) FROM users", prompt_token_ids=[1], token_ids=[2, 3]),
    Reply(content="ok", prompt_token_ids=[4], token_ids=[5]),
]


def llm_for(server: OpenAIServer) -> ChatOpenAI:
    return ChatOpenAI(model="small", base_url=server.base_url, api_key="k", max_retries=0)  # type: ignore[arg-type]


def check_sql_trace(tracer: OtelTracer) -> None:
    spans = tracer.get_last_trace()
    root = spans[-1]
    by_run = {s.attributes[RUN_ID]: s for s in spans if RUN_ID in s.attributes}
    (graph,) = [s for s in runs(spans, "chain") if s.name == "LangGraph"]
    nodes = {s.name: s for s in runs(spans, "chain") if s.attributes.get(semconv.AGENT_NAME) == s.name}
    assert set(nodes) == {"write_sql", "check_sql"} and graph.parent_id == root.span_id
    for node in nodes.values():
        assert node.parent_id == graph.span_id
        assert by_run[node.attributes[PARENT_RUN_ID]] is graph
    chats = runs(spans, "chat_model")
    assert [c.attributes[semconv.AGENT_NAME] for c in chats] == ["write_sql", "check_sql"]
    assert [c.parent_id for c in chats] == [nodes["write_sql"].span_id, nodes["check_sql"].span_id]
    assert {s.attributes.get(semconv.GEN_AI_CONVERSATION_ID) for s in [graph, *nodes.values(), *chats]} == {
        "t-7"
    }
    # the openai capture's records carry the node too, and are linked to the handler's by response id
    assert [s.attributes[semconv.AGENT_NAME] for s in captured(spans)] == ["write_sql", "check_sql"]
    (reward,) = [s for s in spans if s.name == semconv.REWARD_SPAN]
    assert reward.attributes[PARENT_RUN_ID] == nodes["check_sql"].attributes[RUN_ID]  # per-node credit
    assert reward.attributes[semconv.AGENT_NAME] == "check_sql"
    # one triplet per LLM call, with the token ids; agent_match selects one node's calls
    triplets = TracerTraceToTriplet().adapt(spans)
    assert [(t.prompt["token_ids"], t.response["token_ids"]) for t in triplets] == [([1], [2, 3]), ([4], [5])]
    (writer,) = TracerTraceToTriplet(agent_match="^write_sql$").adapt(spans)
    assert writer.response["message"]["content"] == "SELECT count(*) FROM users"
    (checker,) = TracerTraceToTriplet(agent_match="^check_sql$").adapt(spans)
    assert checker.response["message"]["content"] == "ok" and checker.reward == 1.0


def test_a_two_node_graph_becomes_the_span_tree_and_per_node_triplets(tracer: OtelTracer) -> None:
    config: Any = {"callbacks": [LightningCallbackHandler()], "configurable": {"thread_id": "t-7"}}
    with OpenAIServer(SCRIPT) as server, tracer.trace_context("agent"):
        out = sql_graph(llm_for(server)).invoke({"question": "how many users?"}, config=config)
    assert out["verdict"] == "ok"
    check_sql_trace(tracer)


@pytest.mark.anyio
async def test_the_same_graph_run_async_with_the_async_handler(tracer: OtelTracer) -> None:
    config: Any = {"callbacks": [AsyncLightningCallbackHandler()], "configurable": {"thread_id": "t-7"}}
    with OpenAIServer(SCRIPT) as server:
        async with tracer.trace_context("agent"):
            out = await sql_graph(llm_for(server)).ainvoke({"question": "how many users?"}, config=config)
    assert out["verdict"] == "ok"
    check_sql_trace(tracer)


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_a_tool_calling_chain_records_the_tool_run_under_the_chain(tracer: OtelTracer) -> None:
    script = [Reply(tool_calls=[ToolCall("weather", '{"city": "Oslo"}', id="call_1")]), "Sunny in Oslo."]

    def agent(question: str) -> str:
        llm = llm_for(server).bind_tools([weather])
        messages: list[Any] = [HumanMessage(question)]
        first = llm.invoke(messages)
        messages.append(first)
        messages.extend(weather.invoke(call) for call in first.tool_calls)  # type: ignore[attr-defined]
        return str(llm.invoke(messages).content)

    with OpenAIServer(script) as server, tracer.trace_context("agent"):
        answer = RunnableLambda(agent).invoke(
            "Weather in Oslo?", config={"callbacks": [LightningCallbackHandler()]}
        )
        emit_reward(1.0)
    assert answer == "Sunny in Oslo."
    spans = tracer.get_last_trace()
    (chain,) = runs(spans, "chain")
    (tool_run,) = runs(spans, "tool")
    first, second = runs(spans, "chat_model")
    assert {tool_run.parent_id, first.parent_id, second.parent_id} == {chain.span_id}
    assert tool_run.name == "execute_tool weather" and tool_run.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_run.attributes[semconv.OPERATION_OUTPUT] == "sunny in Oslo"
    assert output_parts(first) == [
        {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}
    ]
    assert json.loads(first.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])[0]["function"]["name"] == "weather"
    triplets = TracerTraceToTriplet().adapt(spans)
    assert [t.response["token_ids"] for t in triplets] == [None, None] and len(triplets) == 2
    assert triplets[1].prompt["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "sunny in Oslo",
    }


class Docs(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        if query == "boom":
            raise RuntimeError("index offline")
        return [Document(page_content=f"about {query}", metadata={"rank": 1})]


def test_retrievers_custom_events_retries_agent_steps_and_errors_are_recorded(tracer: OtelTracer) -> None:
    def step(x: str) -> str:
        dispatch_custom_event("progress", {"step": x})
        return x

    handler = LightningCallbackHandler()
    with tracer.trace_context("agent"):
        docs = Docs().invoke("sql", config={"callbacks": [handler]})
        with pytest.raises(RuntimeError, match="index offline"):
            Docs().invoke("boom", config={"callbacks": [handler]})
        RunnableLambda(step).invoke("one", config={"callbacks": [handler]})
        # what an agent executor and a retrying integration call on their run manager
        manager = CallbackManager([handler]).on_chain_start({"name": "agent"}, {"input": "q"}, name="agent")
        manager.on_agent_action(AgentAction("weather", {"city": "Oslo"}, "calling weather"))
        retry_state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
        retry_state.outcome = Future.construct(1, ValueError("transient"), True)
        manager.on_retry(retry_state)
        manager.on_agent_finish(AgentFinish({"output": "sunny"}, "done"))
        manager.on_chain_end({"output": "sunny"})
    assert docs[0].page_content == "about sql"
    spans = tracer.get_last_trace()
    ok, failed = runs(spans, "retriever")
    assert json.loads(ok.attributes[semconv.OPERATION_OUTPUT]) == [
        {"page_content": "about sql", "metadata": {"rank": 1}}
    ]
    assert failed.status.status_code == "ERROR" and "index offline" in (failed.status.description or "")
    progress = [
        json.loads(e.attributes["data"]) for s in spans for e in s.events if e.name == "custom.progress"
    ]
    assert progress == [{"step": "one"}]
    agent = next(s for s in runs(spans, "chain") if s.name == "agent")
    assert [e.name for e in agent.events] == ["agent_action", "retry", "agent_finish"]
    assert agent.events[0].attributes["tool"] == "weather"
    assert (
        agent.events[1].attributes["attempt"] == 1
        and agent.events[1].attributes["exception.message"] == "transient"
    )
