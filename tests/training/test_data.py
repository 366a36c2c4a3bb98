"""Preprocessing rules, one by one, and the `data prepare` command."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bots.training_cli import register
from core.errors import ConfigError
from core.records import StoredMessage
from training import data as d


# --- PII --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+x@mail.example.com please", "write to <email> please"),
        ("call +1 555-123-4567 now", "call <phone> now"),
        ("call (030) 1234 5678", "call <phone>"),
        ("我的电话是 138 1234 5678", "我的电话是 <phone>"),
        ("see https://example.com/a?b=1 and www.foo.org", "see <url> and <url>"),
        ("ask @alice_99 or <@123456789>", "ask <user> or <user>"),
        ("my card 4111111111111111", "my card <number>"),
    ],
)
def test_scrub_pii_each_kind(text, expected):
    assert d.scrub_pii(text) == expected


def test_scrub_pii_keeps_ordinary_numbers_and_text():
    assert d.scrub_pii("I was born in 1990, I have 2 cats, 你好") == "I was born in 1990, I have 2 cats, 你好"


# --- normalisation and noise -----------------------------------------------------
def test_normalize_nfkc_controls_and_newlines():
    assert d.normalize("ｈｅｌｌｏ\u200b\x07  world\r\nsecond   line") == "hello world\nsecond line"


def test_squeeze_runs_keeps_digits():
    assert d.squeeze_runs("sooooo cool!!!!!! 1000000") == "sooo cool!!! 1000000"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   \n ", "empty"), ("k", "one_char"), ("?", "one_char"), ("https://x.com/page", "url_only"),
     ("www.a.com  http://b.org", "url_only"), ("aaaaaaaaaa", "spam"), ("hahahahahahahaha", "spam"), ("!!!!!!!!", "spam")],
)
def test_noise_rules(text, reason):
    assert d.noise_reason(text) == reason


@pytest.mark.parametrize("text", ["好", "haha", "ok", "look at https://x.com", "lol 😂"])
def test_not_noise(text):
    assert d.noise_reason(text) is None


def test_clean_conversation_merges_same_role_and_counts_drops():
    dropped: Counter = Counter()
    conv = d.clean_conversation("x", "t", [("user", "hi"), ("user", "k"), ("user", "how are you"), ("user", "how are you"),
                                            ("assistant", "fine, mail me at a@b.co")], dropped)
    assert conv["turns"] == [{"role": "user", "text": "hi\nhow are you"}, {"role": "assistant", "text": "fine, mail me at <email>"}]
    assert dropped == Counter({"one_char": 1, "duplicate_turn": 1})


def test_clean_conversation_too_short():
    dropped: Counter = Counter()
    assert d.clean_conversation("x", "t", [("user", "hello"), ("assistant", "")], dropped) is None
    assert dropped["too_short"] == 1 and dropped["empty"] == 1


# --- splits ----------------------------------------------------------------------
def _convs(n):
    return [{"id": f"c{i}", "source": "t", "turns": [{"role": "user", "text": f"q{i}"}, {"role": "assistant", "text": f"a{i}"}]}
            for i in range(n)]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(min_value=3, max_value=300), seed=st.integers(0, 1000))
def test_split_is_a_partition_by_conversation(n, seed):
    parts = d.split_conversations(_convs(n), 0.1, 0.1, seed)
    ids = [c["id"] for name in d.SPLITS for c in parts[name]]
    assert sorted(ids) == sorted(f"c{i}" for i in range(n))  # nothing lost, nothing twice
    assert all(parts[name] for name in d.SPLITS)


def test_split_is_seeded():
    a = d.split_conversations(_convs(50), seed=1)
    assert a == d.split_conversations(_convs(50), seed=1)
    assert a != d.split_conversations(_convs(50), seed=2)


def test_split_too_small_is_config_error():
    with pytest.raises(ConfigError, match="too small"):
        d.split_conversations(_convs(2))


# --- JSONL -----------------------------------------------------------------------
def test_read_jsonl_counts_malformed_and_empty_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    good = {"turns": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]}
    oai = {"messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}
    path.write_text("\n".join([json.dumps(good), "{not json", "", json.dumps({"turns": []}), json.dumps(oai), "[1, 2]"]) + "\n",
                    encoding="utf-8")
    records, bad = d.read_jsonl(path)
    assert bad == 4
    assert [r["turns"][1]["text"] for r in records] == ["hello", "你好！"]


# --- prepare ---------------------------------------------------------------------
def _raw(i, text="hello there"):
    return f"r{i}", "t", [("user", f"{text} {i}"), ("assistant", f"reply number {i} to @bob")]


def test_prepare_writes_splits_stats_and_dedupes(tmp_path):
    sources = [_raw(i) for i in range(20)] + [_raw(3)]  # one duplicate conversation
    stats = d.prepare(iter(sources), tmp_path / "out", malformed_lines=2, features=True)
    out = tmp_path / "out"
    rows = [json.loads(line) for s in d.SPLITS for line in (out / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20
    assert all("<user>" in r["turns"][1]["text"] for r in rows)  # PII scrubbed in targets
    assert all(r["features"][0] == f"hello {r['id'][1:]}" for r in rows)  # "there" is a stop word, features only
    assert all(r["turns"][0]["text"].startswith("hello there") for r in rows)
    saved = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert saved["conversations"] == 20 and saved["turns"] == 40
    assert saved["dropped"] == {"duplicate_conversation": 1, "malformed_line": 2}
    assert sum(saved["splits"].values()) == 20 and stats.tokens == saved["tokens"]


def test_prepare_refuses_existing_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.jsonl").write_text("precious\n")
    with pytest.raises(ConfigError, match="--overwrite"):
        d.prepare(iter([_raw(i) for i in range(5)]), tmp_path / "out")
    assert (tmp_path / "out" / "train.jsonl").read_text() == "precious\n"
    d.prepare(iter([_raw(i) for i in range(5)]), tmp_path / "out", overwrite=True)


class FakeStore:
    """Implements only the Store method the data pipeline may use."""

    def __init__(self, convs):
        self.convs = convs
        self.flags = []

    async def consented_conversations(self, flag: str = "training"):
        self.flags.append(flag)
        return self.convs


async def test_store_conversations_use_consented_logs_only():
    msgs = [StoredMessage(1, 7, "user", "telegram:1", "hi bot, I'm at alice@example.com", 1.0),
            StoredMessage(2, 7, "assistant", None, "hello!", 2.0)]
    store = FakeStore([msgs, []])
    raws = await d.store_conversations(store)
    assert store.flags == ["training"]
    assert raws == [("store:7", "store", [("user", "hi bot, I'm at alice@example.com"), ("assistant", "hello!")])]
    conv = d.clean_conversation(*raws[0], Counter())
    assert conv["turns"][0]["text"] == "hi bot, I'm at <email>"


async def _bot_db(path):
    """A real bot database: one consenting user, one who did not consent."""
    from core.events import ConversationKey
    from core.records import Profile
    from core.storage import SQLiteStore

    async with SQLiteStore(path) as store:
        for uid, name, consent in (("telegram:1", "alice", True), ("telegram:2", "bob", False)):
            await store.touch_user(uid)
            await store.save_profile(Profile(qualified_id=uid, consent={"training": consent}))
            conv = await store.active_conversation(ConversationKey("telegram", uid.split(":")[1]))
            for k in range(3):
                msg = await store.add_user_message(conv.id, uid, f"message {k} from {name} (call 555 123 4567)")
                await store.add_reply(msg.id, f"reply {k} to {name}")


# --- CLI -------------------------------------------------------------------------
def _app():
    app = typer.Typer()
    register(app)
    return app


def test_cli_prepare_from_jsonl_reports_malformed(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"turns": [{"role": "user", "text": f"question {i}"}, {"role": "assistant", "text": f"answer {i}"}]})
             for i in range(10)]
    src.write_text("\n".join(lines + ["garbage"]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(_app(), ["data", "prepare", "--no-chitchat", "--jsonl", str(src), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "1 malformed" in result.output
    assert json.loads((tmp_path / "o" / "stats.json").read_text())["dropped"]["malformed_line"] == 1


def test_cli_prepare_reads_only_consented_chats_from_a_bot_db(tmp_path):
    import asyncio

    db = tmp_path / "bot.db"
    asyncio.run(_bot_db(db))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"turns": [{"role": "user", "text": f"q {i}"}, {"role": "assistant", "text": f"a {i}"}]}) + "\n"
                           for i in range(5)), encoding="utf-8")
    out = tmp_path / "o"
    result = CliRunner().invoke(_app(), ["data", "prepare", "--no-chitchat", "--db", str(db), "--jsonl", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = "".join((out / f"{s}.jsonl").read_text(encoding="utf-8") for s in d.SPLITS)
    assert "bob" not in text and "555" not in text  # no consent -> not collected; PII scrubbed
    rows = [json.loads(line) for line in text.splitlines()]
    store_rows = [r for r in rows if r["source"] == "store"]
    assert len(store_rows) == 1 and len(store_rows[0]["turns"]) == 6
    assert store_rows[0]["turns"][0] == {"role": "user", "text": "message 0 from alice (call <phone>)"}
    missing = CliRunner().invoke(_app(), ["data", "prepare", "--no-chitchat", "--db", str(tmp_path / "no.db"), "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "not found" in missing.output


@pytest.mark.parametrize("case", ["too_small", "exists"])
def test_cli_prepare_bad_input_exits_2(tmp_path, case):
    src = tmp_path / "in.jsonl"
    n = 2 if case == "too_small" else 10
    src.write_text("".join(json.dumps({"turns": [{"role": "user", "text": f"q {i}"}, {"role": "assistant", "text": f"a {i}"}]}) + "\n"
                           for i in range(n)), encoding="utf-8")
    out = tmp_path / "o"
    if case == "exists":
        out.mkdir()
        (out / "keep").write_text("x")
    result = CliRunner().invoke(_app(), ["data", "prepare", "--no-chitchat", "--jsonl", str(src), "--out", str(out)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert ("too small" if case == "too_small" else "--overwrite") in result.output
