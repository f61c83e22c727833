"""``/v1/chat/completions`` answered to the ``openai`` client: an image in, text and artifact
links out, streaming and not; remote image URLs refused; sessions mapped."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from tests.assistant.server_harness import read_sse, serving
from tests.conftest import make_png, plugin_assistant

RESIZE = {
    "steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 32}}],
    "reply": "Here it is, 32 pixels wide.",
}


@pytest.fixture
def served():
    with serving(plugin_assistant()) as srv:
        yield srv


@pytest.fixture
def client(served):
    return openai.OpenAI(
        base_url=f"{served.url}/v1",
        api_key=served.token,
        max_retries=0,
        http_client=httpx.Client(trust_env=False),
    )


def _image_message(tmp_path, text: str = "make it 32 wide") -> list[dict]:
    png = make_png(tmp_path / "in.png", (128, 96), (20, 160, 20)).read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [
        {"role": "system", "content": "You are helpful."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
    ]


def _check_image(served, url: str) -> None:
    data = served.client().get(url).content
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (32, 24)
        assert img.getpixel((1, 1))[1] > 100  # green, from the upload


def test_non_streaming_with_an_image(served, client, tmp_path):
    reply = client.chat.completions.create(
        model="anymodal", messages=_image_message(tmp_path), extra_body={"plan": RESIZE}
    )
    assert reply.object == "chat.completion" and reply.model == "anymodal"
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert text.startswith("Here it is, 32 pixels wide.")
    extra = reply.model_extra["anymodal"]
    assert extra["status"] == "ok"
    (art,) = extra["artifacts"]
    assert art["modality"] == "image" and art["metadata"]["width"] == 32
    assert art["url"] == f"{served.url}/v1/sessions/{extra['session']}/artifacts/{art['id']}"
    assert f"]({art['url']})" in text  # the link is in the reply text too
    _check_image(served, art["url"])


def test_streaming_with_an_image(served, client, tmp_path):
    stream = client.chat.completions.create(
        model="anymodal",
        messages=_image_message(tmp_path),
        stream=True,
        extra_body={"plan": RESIZE},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("Here it is, 32 pixels wide.")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    (art,) = chunks[-1].model_extra["anymodal"]["artifacts"]
    assert art["url"] in text
    _check_image(served, art["url"])


def test_raw_stream_ends_with_done(served, tmp_path):
    body = {
        "model": "anymodal",
        "messages": _image_message(tmp_path),
        "stream": True,
        "plan": RESIZE,
    }
    with (
        served.client() as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [e["data"] for e in read_sse(response.iter_lines())]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1


def test_remote_image_urls_and_unknown_models_are_refused(served, client):
    remote = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="anymodal", messages=remote)
    assert err.value.status_code == 400
    assert "offline" in err.value.message and "data: URL" in err.value.message
    with pytest.raises(openai.NotFoundError, match="use 'anymodal'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    audio = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]
    with pytest.raises(openai.BadRequestError, match="'text' and 'image_url'"):
        client.chat.completions.create(model="anymodal", messages=audio)
    assert [m.id for m in client.models.list()] == ["anymodal"]
    assert served.assistant.list_sessions() == []  # nothing was run


def test_user_and_session_map_to_anymodal_sessions(served, client):
    plan = {"steps": [], "reply": "noted"}
    ask = [{"role": "user", "content": "hello"}]

    def session_of(session: str | None = None, **kw) -> str:
        extra = {"plan": plan, **({"session": session} if session else {})}
        reply = client.chat.completions.create(
            model="anymodal", messages=ask, extra_body=extra, **kw
        )
        assert reply.choices[0].message.content == "noted"
        return reply.model_extra["anymodal"]["session"]

    alice = session_of(user="alice@example.com")
    assert session_of(user="alice@example.com") == alice
    assert session_of(user="bob") != alice
    assert session_of(extra_headers={"X-Anymodal-Session": "my-chat"}) == "my-chat"
    assert session_of("my-chat") == "my-chat"
    fresh = {session_of(), session_of()}
    assert len(fresh) == 2 and alice not in fresh
    turns = {s.id: s.turns for s in served.assistant.list_sessions()}
    assert turns[alice] == 2 and turns["my-chat"] == 2
