"""The `hecvl` dispatcher: every stage is reachable, and each subcommand's --help shows its own options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hecvl.cli import COMMANDS, main


def test_every_command_module_imports_and_defines_its_interface():
    import argparse
    import importlib

    for name, (module, _help) in COMMANDS.items():
        mod = importlib.import_module(module)
        parser = argparse.ArgumentParser(prog=name)
        mod.add_arguments(parser)
        assert callable(mod.run), name


def test_subcommand_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["labels", "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_no_or_unknown_command_fails():
    assert main([]) == 2
    proc = subprocess.run([sys.executable, "-m", "hecvl.cli", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
