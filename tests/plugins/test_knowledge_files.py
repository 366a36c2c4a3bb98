"""Knowledge base files that are empty, binary or not UTF-8 are skipped, each named."""

from plugins.knowledge import read_folder


def test_bad_files_are_skipped_with_their_reason(tmp_path):
    (tmp_path / "good.md").write_text("# Refunds\n\nWithin 30 days.\n", encoding="utf-8")
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "blob.txt").write_bytes(b"PK\x03\x04\x00\x00binary")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    passages, skipped = read_folder(tmp_path, 900)
    assert [(p.source, p.heading) for p in passages] == [("good.md", "Refunds")]
    assert sorted(skipped) == ["blob.txt (binary)", "empty.md (empty)", "latin.txt (not UTF-8)"]
