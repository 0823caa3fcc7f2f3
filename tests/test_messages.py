"""Messages a new user meets first: a wrong kind of --weights file, a missing optional package, help at 80
columns."""

from __future__ import annotations

import pytest
from typer.main import get_command

from yoloswap.cli.app import app
from yoloswap.errors import EXIT_FAILURE, MissingExtraError
from yoloswap.safeload import load_checkpoint


def test_a_text_file_given_as_weights_is_called_not_a_checkpoint_and_the_accepted_kinds_are_listed(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("names: [cat, dog]\ntrain: images/train\n")
    code, _, err = cli("val", "--weights", str(notes))
    assert code == EXIT_FAILURE
    line = err.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "text file, not a checkpoint" in line and str(notes) in line
    assert ".pt" in line and ".safetensors" in line and "corrupt" not in line


def test_random_bytes_are_still_called_corrupt_not_text(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(Exception, match="corrupt or truncated"):
        load_checkpoint(junk)


def test_a_missing_optional_package_exits_1_and_says_what_to_install(cli, tmp_path, monkeypatch):
    import yoloswap.deploy.export as export

    monkeypatch.setattr(export, "_importable", lambda name: name != "onnxruntime")
    code, _, err = cli("export", "--weights", str(tmp_path / "best.pt"), "--format", "onnx")
    assert code == 1  # 2 is for a wrong command line; this one was right
    line = err.strip().splitlines()[-1]
    assert "onnxruntime not installed" in line and 'pip install "yoloswap[export]"' in line
    assert MissingExtraError(["tensorboard"], "tensorboard").exit_code == 1


def _command_names():
    return sorted(get_command(app).commands)


@pytest.mark.parametrize("name", _command_names())
def test_help_at_80_columns_shows_every_option_name_whole(cli, monkeypatch, name):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERMINAL_WIDTH", "80")
    code, out, _ = cli(name, "--help")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    command = get_command(app).commands[name]
    for param in command.params:
        for option in [*param.opts, *param.secondary_opts]:
            if option.startswith("--"):
                assert option in out, f"{name} --help cuts {option}"
    assert "…" not in out
