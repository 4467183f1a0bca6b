"""Reusable option groups of the ``dprec`` commands, and the model built from them.

Three groups are shared by several commands, each a decorator:

- :func:`data_source_options` — ``--dataset NAME | --ratings FILE | --synthetic KIND`` with the ratings-file
  column options and ``--items CATALOG`` (a public item catalog);
- :func:`privacy_options` — ``--epsilon``, ``--delta``, ``--privacy-unit``, ``--secure-noise``, ``--ledger``
  (and, for ``train``, ``--no-ledger``);
- :func:`model_options` — ``--model``, ``--config model.toml``, ``--seed``, ``--threads`` and one flag per
  hyperparameter, **generated** from the registered models' pydantic ``Config`` fields (type, bounds' help,
  description, per-model default), so a new model's hyperparameters are flags without any CLI code.

:func:`build_model` merges, in this order, the TOML config's ``[params]``, then the flags given on the command
line, and validates the result with the model's own ``Config`` — errors name the flag (``--factors``) or the
config key (``model.toml: params.factors``), never a Python argument.
"""

from __future__ import annotations

import math
import os
import tomllib
import types
import typing
from typing import Any, Literal

import click
from click.core import ParameterSource
from pydantic import ValidationError

from ..errors import ConfigError, did_you_mean
from ..models.registry import MODELS, get_model, model_names
from ..privacy.units import check_delta, check_epsilon
from . import _app
from ._app import CHOOSING_EPSILON, flag_name  # noqa: F401  (CHOOSING_EPSILON: used by the commands)


# ============================================================================ grouped help
class GroupedOption(click.Option):
    """A click option that belongs to a named help section (``group``)."""

    def __init__(self, *args, group: str = "options", **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists its options by section (data source, privacy, model, …).

    A command with :func:`model_options` also gets flags for the hyperparameters of models registered after
    the CLI was imported (a plugin's ``@register_model``): they are added when the command parses.
    """

    def get_params(self, ctx):
        params = super().get_params(ctx)
        if getattr(self.callback, "_dprec_hyperparameters", False):
            have = {p.name for p in params}
            extra = [opt for field, opt in _hyperparameter_options() if field not in have]
            if extra:
                self.params[-1:-1] = extra  # before --help; kept for the next parse
                params = super().get_params(ctx)
        return params

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec is None:
                continue
            sections.setdefault(getattr(p, "group", "options"), []).append(rec)
        for name, rows in sections.items():
            with formatter.section(name[0].upper() + name[1:]):
                formatter.write_dl(rows)


def option(*decls, group: str, **kwargs):
    """``click.option`` in a help section."""
    return click.option(*decls, cls=GroupedOption, group=group, **kwargs)


def apply(decorators):
    def deco(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return deco


def given(ctx: click.Context, name: str) -> bool:
    """True if option ``name`` was typed on the command line (not a default)."""
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


# ============================================================================ value types
class _Checked(click.ParamType):
    """A number checked by one of dprec's validators; its message is the error."""

    def __init__(self, name, check):
        self.name, self._check = name, check

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            number = float(value)  # accepts "inf"
        except (TypeError, ValueError):
            self.fail(f"expected a number, got {value!r}", param, ctx)
        try:
            return self._check(number)
        except ValueError as exc:
            self.fail(_app.cli_terms(str(exc)), param, ctx)


EPSILON = _Checked("epsilon", check_epsilon)
DELTA = _Checked("delta", lambda v: check_delta(v, allow_zero=True))
TOTAL_DELTA = _Checked("delta", check_delta)

EPSILON_HELP = f"privacy budget ε > 0 ('inf' = non-private reference); how to choose it: {CHOOSING_EPSILON}"


# ============================================================================ data source
FILE_OPTIONS = (
    "user_col", "item_col", "rating_col", "timestamp_col", "rating_bounds", "sep", "no_header", "consent_col"
)  # fmt: skip


def data_source_options(*, required: bool = True, synthetic: bool = True):
    """``--dataset | --ratings | --synthetic`` (exactly one when ``required``), data-home/download, the
    ratings-file column options and ``--items`` (read by :func:`dprec.cli.source.load_data`)."""
    g = "data source"
    f = "ratings file"
    opts = [
        option("--dataset", metavar="NAME", group=g, help="a registered dataset (see `dprec datasets list`)"),
        option("--ratings", metavar="FILE", group=g, help="a ratings file (CSV/TSV/Parquet), one row per rating"),
    ]
    if synthetic:
        opts.append(
            option(
                "--synthetic",
                type=click.Choice(["ratings", "rankings"]),
                group=g,
                help="the demo's embedded synthetic data (seed 0): 1–5 ratings, or interactions for top-N",
            )
        )
    opts += [
        option(
            "--items",
            metavar="CATALOG",
            group=g,
            help="public item catalog: one id per line, or a column of a CSV (--items-col); without it a DP fit "
            "spends budget on DP item selection and may release few items",
        ),
        option("--items-col", metavar="NAME", group=g, help="column of --items holding the ids (default: item col)"),
        option("--data-home", metavar="DIR", group=g, help="data directory for --dataset (default: $DPREC_DATA)"),
        option("--download", is_flag=True, group=g, help="download --dataset if it is not present"),
        option("--user-col", metavar="NAME", group=f, help="user id column  [default: user]"),
        option("--item-col", metavar="NAME", group=f, help="item id column  [default: item]"),
        option("--rating-col", metavar="NAME", group=f, help="rating column, 'none' = implicit  [default: rating]"),
        option("--timestamp-col", metavar="NAME", group=f, help="timestamp column (optional)"),
        option("--rating-bounds", metavar="LO,HI", group=f, help="public bounds of the rating scale (DP models)"),
        option("--sep", metavar="SEP", group=f, help="field separator  [default: ',' or tab for .tsv/.data]"),
        option("--no-header", is_flag=True, group=f, help="the file has no header; columns are named 0, 1, 2, …"),
        option(
            "--opted-out",
            metavar="FILE",
            group="consent",
            help="users who opted out, one raw id per line ('#' comments): their rows are dropped as the data is "
            "read and never reach training (any data source)",
        ),
        option(
            "--consent-col",
            metavar="NAME",
            group="consent",
            help="a --ratings column saying per row whether the user consents (booleans or 0/1; missing = no): "
            "a user with any non-consenting row is dropped entirely",
        ),
    ]
    opts.append(_source_check(required))
    return apply(opts)


def _source_check(required: bool):
    """A callback-only hidden option that checks the data-source choice once all values are parsed."""

    def deco(f):
        import functools

        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            src = [k for k in ("dataset", "ratings", "synthetic") if kwargs.get(k) is not None]
            if len(src) > 1:
                raise click.UsageError(f"--{src[0]} and --{src[1]} are not allowed together: give one data source")
            if required and not src:
                raise click.UsageError("give a data source: --dataset NAME, --ratings FILE or --synthetic KIND")
            return f(*args, **kwargs)

        return wrapper

    return deco


# ============================================================================ privacy
def check_ledger(ctx, param, value):
    """``--ledger``: a file path, or a ``postgresql://`` URL without a password in it (a password on the command
    line lands in shell histories, process lists and the records that name the ledger)."""
    if value is None:
        return value
    from ..privacy.ledger_postgres import has_password, is_postgres_url

    if is_postgres_url(value) and has_password(value):
        raise click.BadParameter(
            "the URL holds a password: drop it from the URL and put it in ~/.pgpass (mode 0600) or PGPASSWORD",
            ctx=ctx,
            param=param,
        )
    return value


def privacy_options(*, no_ledger: bool = False, ledger_help: str = "privacy ledger charged by the fit"):
    g = "privacy (DP models only)"
    opts = [
        option("--epsilon", type=EPSILON, group=g, help=EPSILON_HELP),
        option("--delta", type=DELTA, group=g, help="δ, required for a finite ε (e.g. 1e-5); see " + CHOOSING_EPSILON),
        option(
            "--privacy-unit",
            type=click.Choice(["user", "rating"]),
            group=g,
            help="what neighbouring datasets differ by: one user with all their ratings, or one rating  "
            "[default: user]",
        ),
        option(
            "--secure-noise/--no-secure-noise",
            default=None,
            group=g,
            help="draw every release through OpenDP's Gaussian measurement  [default: no-secure-noise]",
        ),
        option(
            "--ledger",
            metavar="PATH|URL",
            group=g,
            callback=check_ledger,
            help=ledger_help + ": a file, or postgresql://USER@HOST:PORT/DB (create it with `dprec budget init`)",
        ),
    ]
    if no_ledger:
        opts.append(
            option(
                "--no-ledger",
                is_flag=True,
                group=g,
                help="fit a DP model without charging any ledger (the privacy report records it)",
            )
        )
    return apply(opts)


PRIVACY_PARAMS = ("epsilon", "delta", "privacy_unit", "secure_noise")


# ============================================================================ hyperparameters
#: fields every model has, set by dedicated flags (--seed, --threads) or the privacy group
_NOT_HYPERPARAMETERS = {"rng", "num_threads", *PRIVACY_PARAMS}


def _unwrap(annotation):
    """(base type, choices or None, optional?) of a pydantic field annotation."""
    optional = False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        annotation = non_none[0] if len(non_none) == 1 else annotation
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return str, tuple(typing.get_args(annotation)), optional
    if annotation in (bool, int, float, str):
        return annotation, None, optional
    return None, None, optional


def _default_text(field) -> str:
    d = field.default
    if d is None:
        return "auto"  # None = the model's rule (the description says which)
    if isinstance(d, float) and math.isinf(d):
        return "inf"
    return str(d)


def hyperparameter_specs() -> dict[str, dict]:
    """One entry per hyperparameter name over the registered models: the click type, the help text (per-model
    descriptions and defaults) and which models take it. Regenerated at every call (models register late)."""
    specs: dict[str, dict] = {}
    for name in model_names():
        cls = MODELS[name]
        for field, info in cls.Config.model_fields.items():
            if field in _NOT_HYPERPARAMETERS:
                continue
            base, choices, _ = _unwrap(info.annotation)
            if base is None:
                continue
            s = specs.setdefault(field, {"base": set(), "choices": [], "models": [], "desc": {}, "defaults": {}})
            s["base"].add(base)
            for c in choices or ():
                if c not in s["choices"]:
                    s["choices"].append(c)
            s["models"].append(name)
            s["desc"].setdefault(info.description or field, []).append(name)
            s["defaults"][name] = _default_text(info)
    for field, s in specs.items():
        bases = s["base"]
        if s["choices"] and bases == {str}:
            s["type"] = click.Choice(s["choices"])
        elif bases == {bool}:
            s["type"] = bool
        elif bases <= {int}:
            s["type"] = int
        elif bases <= {int, float}:
            s["type"] = float
        else:
            s["type"] = str
        descs = s["desc"]
        if len(descs) == 1:
            text = next(iter(descs))
        else:
            text = "; ".join(f"{', '.join(ms)}: {d}" for d, ms in descs.items())
        defaults = s["defaults"]
        if len(set(defaults.values())) == 1:
            dflt = next(iter(defaults.values()))
            dtext = f"[models: {', '.join(s['models'])}; default: {dflt}]"
        else:
            dtext = "[default: " + ", ".join(f"{m} {v}" for m, v in defaults.items()) + "]"
        s["help"] = f"{text}  {dtext}"
        _app._KNOWN_PARAMS.add(field)
    return specs


def model_options(*, seed_default=None, seed_help=None):
    """``--model``, ``--config``, ``--seed``, ``--threads`` and the generated hyperparameter flags."""
    g = "model"
    h = "hyperparameters (each applies to the models listed; 'auto' = the model's documented rule)"
    names = model_names()
    opts = [
        option(
            "--model",
            metavar="NAME",
            group=g,
            help=f"registered model: {', '.join(names)}  (DP: {', '.join(n for n in names if MODELS[n].is_private)}); "
            "one model's flags and defaults: `dprec models show NAME`",
        ),
        option(
            "--config",
            "model_config",
            metavar="TOML",
            group=g,
            help='model config file: `model = "NAME"` and a [params] table of the model\'s Config fields '
            "(flags given on the command line override it)",
        ),
        option(
            "--seed",
            type=click.IntRange(min=0),
            default=seed_default,
            group=g,
            help=seed_help
            or "noise and initialisation seed; for a DP model this is reproducibility mode (not for release)  "
            "[default: fresh OS entropy]",
        ),
        option("--threads", type=click.IntRange(min=0), group=g, help="numba threads  [default: 0 = all cores]"),
    ]
    for field, s in hyperparameter_specs().items():
        flag = flag_name(field)
        if s["type"] is bool:
            opts.append(option(f"{flag}/--no-{flag[2:]}", field, default=None, group=h, help=s["help"]))
        else:
            opts.append(option(flag, field, type=s["type"], group=h, help=s["help"]))

    def deco(f):
        f = apply(opts)(f)
        f._dprec_hyperparameters = True
        return f

    return deco


def _hyperparameter_options():
    """(field, click.Option) for every hyperparameter of the currently registered models."""
    h = "hyperparameters (each applies to the models listed; 'auto' = the model's documented rule)"
    for field, s in hyperparameter_specs().items():
        flag = flag_name(field)
        if s["type"] is bool:
            yield field, GroupedOption([f"{flag}/--no-{flag[2:]}", field], default=None, group=h, help=s["help"])
        else:
            yield field, GroupedOption([flag, field], type=s["type"], group=h, help=s["help"])


def hyperparameter_names() -> list[str]:
    return list(hyperparameter_specs())


# ============================================================================ building the model
def read_model_config(path: str) -> tuple[str | None, dict]:
    """(model name or None, params) from a TOML model config::

    model = "dpals"          # optional: --model overrides nothing, they must agree
    [params]                 # any field of the model's Config (the library's names)
    factors = 8
    max_ratings_per_user = 20
    """
    if not os.path.isfile(path):
        raise ConfigError(f"--config: file not found: {path}")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    unknown = set(doc) - {"model", "params"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{path}: unknown key {key!r}; {did_you_mean(key, ['model', 'params'])}a model config has `model` and "
            "a [params] table"
        )
    name = doc.get("model")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{path}: model must be a registered model name, got {name!r}")
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: params must be a table ([params])")
    return name, dict(params)


def resolve_model_name(ctx, kwargs) -> tuple[type, str | None, dict]:
    """The model class (from --model or the config's ``model``), the config path and its params."""
    path = kwargs.get("model_config")
    cfg_name, cfg_params = read_model_config(path) if path else (None, {})
    name = kwargs.get("model")
    if name is None and cfg_name is None:
        raise click.UsageError("Missing option '--model' (or a `model = ...` line in --config).")
    if name is not None and cfg_name is not None and name != cfg_name:
        raise ConfigError(f"--model {name} disagrees with {path}: model = {cfg_name!r}; give one")
    return get_model(name or cfg_name), path, cfg_params


def build_model(ctx: click.Context, kwargs: dict, *, seed=None, privacy: bool = True):
    """A fresh model from the command line: the config file's params, then every flag typed on the command
    line (hyperparameters, ``--seed`` as ``rng``, ``--threads`` as ``num_threads``, the privacy flags for a DP
    model), validated once by the model's ``Config``. ``seed`` overrides ``--seed`` (evaluate's default)."""
    cls, path, params = resolve_model_name(ctx, kwargs)
    name = cls.name
    accepted = set(cls.Config.model_fields)
    origin = {k: f"{path}: params.{k}" for k in params}
    for k in params:
        if k not in accepted:
            raise ConfigError(
                f"{path}: params.{k}: model {name!r} has no such parameter; "
                f"{did_you_mean(k, accepted)}known: {', '.join(accepted)}"
            )
    for field in hyperparameter_names():
        if field in kwargs and given(ctx, field):
            if field not in accepted:
                takes = [m for m in model_names() if field in MODELS[m].Config.model_fields]
                raise ConfigError(f"model {name!r} does not take {flag_name(field)} (it applies to {', '.join(takes)})")
            params[field] = kwargs[field]
            origin[field] = flag_name(field)
    if privacy:
        _check_privacy_flags(ctx, kwargs, cls)
        for p in PRIVACY_PARAMS:
            if kwargs.get(p) is not None:
                params[p] = kwargs[p]
                origin[p] = flag_name(p)
        if cls.is_private and params.get("epsilon") is None:
            raise ConfigError(f"model {name!r} is differentially private: pass --epsilon (and --delta)")
    seed = kwargs.get("seed") if seed is None else seed
    if seed is not None and "rng" in accepted:
        params["rng"], origin["rng"] = seed, "--seed"
    if kwargs.get("threads") is not None:
        params["num_threads"], origin["num_threads"] = kwargs["threads"], "--threads"
    try:
        config = cls.Config(**params)
    except ValidationError as exc:
        raise ConfigError(f"model {name!r}: " + _validation_message(exc, origin)) from None
    _warn_ignored(cls, config, origin)
    return cls._from_config(config)


def _validation_message(exc: ValidationError, origin: dict) -> str:
    msgs = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else ""
        where = origin.get(key, flag_name(key) if key else "")
        msg = _app.cli_terms(str(err["msg"]).removeprefix("Value error, "))
        if key and "got" not in msg:
            msg += f" (got {err.get('input')!r})"
        msgs.append(f"{where}: {msg}" if where else msg)
    return "; ".join(msgs)


def _check_privacy_flags(ctx, kwargs, cls) -> None:
    flags = [p for p in (*PRIVACY_PARAMS, "ledger") if kwargs.get(p) not in (None, False)]
    if kwargs.get("no_ledger"):
        flags.append("no_ledger")
    if flags and not cls.is_private:
        dp = [n for n in model_names() if MODELS[n].is_private]
        raise ConfigError(
            f"model {cls.name!r} is not private: {flag_name(flags[0])} applies only to differentially private "
            f"models ({', '.join(dp)})"
        )


def _warn_ignored(cls, config, origin: dict) -> None:
    """A flag the chosen model accepts but will not use is a warning naming the flag."""
    if "num_threads" in origin and not getattr(cls, "uses_threads", False):  # the model class declares it
        _app.warn(
            f"{origin['num_threads']} is ignored by model {cls.name!r} (its fit does not run the parallel kernels)"
        )
    feedback = getattr(config, "feedback", None)
    if feedback in ("explicit", "implicit"):
        other = "implicit" if feedback == "explicit" else "explicit"
        for field, info in cls.Config.model_fields.items():
            desc = (info.description or "").lower()
            if field in origin and field != "feedback" and desc.startswith(other):
                _app.warn(
                    f"{origin[field]} is ignored by model {cls.name!r} with feedback={feedback} "
                    f"(it applies to --feedback {other})"
                )


def model_params_for_report(model) -> dict[str, Any]:
    return {k: v for k, v in model.get_params().items() if k != "rng"}
