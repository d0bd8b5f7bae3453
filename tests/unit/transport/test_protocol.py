"""The script output protocol: events, blocks and plain lines are told apart."""

from sparkrun.transport.protocol import parse_output


def test_events_blocks_and_text_are_separated() -> None:
    out = parse_output(
        "hello\n@sr phase port\n@sr-begin log\nline 1\n@sr not an event inside a block\n@sr-end log\n@sr ready 1.5\n"
    )
    assert out.events == [("phase", "port"), ("ready", "1.5")]
    assert out.blocks == {"log": "line 1\n@sr not an event inside a block"}
    assert out.text == ["hello"]
    assert out.last("ready") == "1.5"
    assert out.last("missing") is None


def test_a_truncated_block_keeps_what_arrived() -> None:
    out = parse_output("@sr-begin log\nonly line\n")
    assert out.blocks["log"] == "only line"
