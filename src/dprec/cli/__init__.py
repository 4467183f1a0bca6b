"""The ``dprec`` command (click).

::

    dprec train      (--dataset NAME | --ratings FILE [--items CATALOG] | --synthetic KIND) --model M
                     [hyperparameters] [--config model.toml] --epsilon E --delta D [--privacy-unit U]
                     (--ledger PATH | --no-ledger) [--seed N] --out MODEL.npz [--export-public PUBLIC.npz]
    dprec recommend  MODEL.npz (--user U ... | --users-file F | --fold-in RATINGS) [-n 10] [--format table|json|csv]
    dprec report     MODEL.npz [--ledger PATH] [--evaluation EVAL.json] [--audit AUDIT.json] [--format md|json]
    dprec forget     MODEL.npz --users FILE [--ledger PATH] [--out PATH] [--format text|json]
    dprec audit      (source) --model M [--epsilon E ...] [--groups COL ...] [--privacy-audit] [--plot-dir DIR]
                     [--format md|json]
    dprec budget     init (source) --epsilon E --delta D [--ledger PATH] | show [source] [--ledger PATH]
    dprec evaluate   (source) --model M [hyperparameters] [--split random|user|strong ...] [privacy options]
    dprec demo       [--seed 0] [--ledger PATH] [--format table|json]
    dprec models     list | show NAME [--format table|json]
    dprec datasets   list [--data-home DIR] [--format table|json]
    dprec bench      run CONFIG.toml --out DIR [--resume] [--jobs N] | summary DIR

The modules, by responsibility: :mod:`._app` (exit codes, messages and warnings in CLI terms, output
helpers), :mod:`.options` (the reusable option groups: data source, privacy, model hyperparameters generated
from the registered models' ``Config``), :mod:`.source` (reading ``--dataset``/``--ratings``/``--items``), and
one module per command group. The reference of every command is ``docs/cli.md``, generated from these
commands by ``scripts/cli_reference.py``.

Exit codes (:data:`EXIT_CODES`): 0 success; 2 usage error or bad input (click usage errors,
:class:`~dprec.errors.ConfigError`, :class:`~dprec.errors.UnknownIdError`); 3 privacy budget refused or unusable
ledger; 4 a file that cannot be trusted (:class:`~dprec.errors.CorruptFileError`). Any other exception is a
bug and propagates with its traceback. Warnings are printed once each as ``warning: …`` on stderr.
"""

from __future__ import annotations

import os
import sys

import click

from ..bench import adapters as _adapters  # noqa: F401  (registers the bench's implicit-als reference)
from ..errors import ConfigError
from ._app import EXIT_BUDGET, EXIT_CODES, EXIT_CORRUPT, EXIT_OK, EXIT_USAGE, message, run_command

__all__ = ["main", "cli", "EXIT_CODES", "EXIT_OK", "EXIT_USAGE", "EXIT_BUDGET", "EXIT_CORRUPT"]

#: deprecated name of :class:`dprec.errors.ConfigError` (bad command-line input)
UsageError = ConfigError


def _version() -> str:
    from .. import __version__

    return __version__


class DprecGroup(click.Group):
    """The top-level group: runs a command with warnings as ``warning: …`` lines and maps dprec's errors to
    their exit codes (so ``CliRunner`` and the installed ``dprec`` behave the same)."""

    def invoke(self, ctx):
        try:
            return run_command(lambda: super(DprecGroup, self).invoke(ctx))
        except tuple(EXIT_CODES) as exc:
            code, prefix = next(v for cls, v in EXIT_CODES.items() if isinstance(exc, cls))
            click.echo(f"dprec: {prefix}: {message(exc)}", err=True)
            ctx.exit(code)


@click.group(
    "dprec", cls=DprecGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(_version(), "--version", prog_name="dprec", message="%(prog)s %(version)s")
def cli():
    """Differentially private recommendation: train, serve and report on DP recommenders.

    Walkthrough: `dprec budget init` → `dprec train` → `dprec report` → `dprec recommend` (with --fold-in for
    new users) → `dprec budget show`. Choosing ε: docs/choosing-epsilon.md; every flag: docs/cli.md.
    """


def _register() -> None:
    from .audit import audit
    from .bench import bench, bench_summary_alias
    from .budget import budget
    from .datasets import datasets
    from .demo import demo
    from .evaluate import evaluate
    from .forget import forget
    from .models import models
    from .report import report
    from .serve import recommend
    from .train import train

    for cmd in (
        train, recommend, report, audit, forget, budget, evaluate, models, demo, datasets, bench, bench_summary_alias
    ):  # fmt: skip
        cli.add_command(cmd)


_register()


def _quiet_broken_pipe() -> int:
    """stdout was closed by the reader (``dprec budget show | head``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file descriptor (e.g. a test's capture)
        pass
    return EXIT_OK


def main(argv=None) -> int:
    """Run the ``dprec`` command; returns the exit code (0 ok; 2 bad input; 3 budget refused or unusable
    ledger; 4 untrusted file — see :data:`EXIT_CODES`). Any other exception propagates: it is a bug."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_usage(click.Context(cli, info_name="dprec")), err=True)
        click.echo("error: give a command (dprec --help lists them)", err=True)
        return EXIT_USAGE
    try:
        try:
            result = cli.main(args=args, prog_name="dprec", standalone_mode=False)
            sys.stdout.flush()
        except click.exceptions.Exit as exc:
            return int(exc.exit_code or 0)
        except click.ClickException as exc:  # usage errors: exit 2, message already in CLI terms
            exc.show()
            return int(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("dprec: aborted", err=True)
            return 1
    except BrokenPipeError:
        return _quiet_broken_pipe()
    return int(result or 0) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
