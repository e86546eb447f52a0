"""The shipped demo: customer churn for a subscription business.

``generate`` writes a reference (training) period, one incoming batch per day and, per
day, a label file that arrives ``label_delay_days`` later. At known days the scenario
has a data-quality incident, a covariate shift and a concept drift, so every branch of
the loop is exercised. Everything is generated here; nothing is downloaded.

The same customers can carry a regression target instead (``SPEND``: what a customer
pays next month) or a multiclass one (``PLAN_CHANGE``: keep, upgrade or downgrade the plan
next month), each with its own concept drift, for a regressor's or a multiclass loop.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import Config, DataConfig, DemoConfig
from driftloop.errors import DriftloopError

NUMERIC = (
    "tenure_months", "monthly_charges", "total_charges", "support_calls", "data_usage_gb",
    "num_products", "age", "days_since_last_login", "payment_delay_days", "discount_pct",
)
CATEGORICAL = ("contract_type", "plan_tier", "region", "payment_method", "acquisition_channel")
ID, TIMESTAMP, TARGET, SPEND = "customer_id", "event_ts", "churned", "spend_next_month"
PLAN_CHANGE, PLAN_CHANGES = "plan_change", ("keep", "upgrade", "downgrade")

_LEVELS = {
    "contract_type": (("monthly", "annual", "two_year"), (0.55, 0.30, 0.15)),
    "plan_tier": (("basic", "standard", "premium"), (0.50, 0.35, 0.15)),
    "region": (("north", "south", "east", "west"), (0.30, 0.25, 0.25, 0.20)),
    "payment_method": (("card", "bank_transfer", "e_wallet", "check"), (0.40, 0.25, 0.20, 0.15)),
    "acquisition_channel": (("web", "store", "phone", "partner"), (0.40, 0.25, 0.20, 0.15)),
}
# Covariate shift: heavier usage and a web-heavy acquisition campaign, on inputs the churn
# mechanism of the reference period ignores: the features move, the model's outputs should not.
_SHIFTED_CHANNEL = (0.70, 0.12, 0.10, 0.08)
# The competitor's campaign: customers call support asking for a price match.
_SUPPORT_CALLS_MEAN, _COMPETITOR_SUPPORT_CALLS_MEAN = 1.2, 2.4


@dataclass(frozen=True)
class DayPlan:
    day: int
    batch_id: str
    covariate_shift: bool
    concept_drift: bool
    quality_incident: bool
    labels_arrive: str


def batch_id_for(day: date) -> str:
    return day.isoformat()


def plan(cfg: DemoConfig, period_days: int = 1) -> list[DayPlan]:
    """What happens to each simulated batch (1-based; one every ``period_days``), so the demo table can say it."""
    days = []
    for n in range(1, cfg.n_batches + 1):
        when = cfg.first_day + timedelta(days=(n - 1) * period_days)
        days.append(
            DayPlan(
                day=n,
                batch_id=batch_id_for(when),
                covariate_shift=n >= cfg.covariate_shift_batch,
                concept_drift=n >= cfg.concept_drift_batch,
                quality_incident=n == cfg.quality_incident_batch,
                labels_arrive=batch_id_for(when + timedelta(days=cfg.label_delay_days)),
            )
        )
    return days


def _categorical(rng: np.random.Generator, name: str, n: int, probs=None) -> np.ndarray:
    levels, default = _LEVELS[name]
    return rng.choice(np.array(levels, dtype=object), size=n, p=probs or default)


def customers(
    rng: np.random.Generator, n: int, start: pd.Timestamp, days: int, *, shifted: bool, id_offset: int,
    competitor: bool = False,
) -> pd.DataFrame:
    """Draw ``n`` customers with timestamps spread over ``days`` days from ``start``; ``competitor``: the
    campaign that comes with the concept drift also changes behaviour (more support calls)."""
    contract = _categorical(rng, "contract_type", n)
    tier = _categorical(rng, "plan_tier", n)
    channel = _categorical(rng, "acquisition_channel", n, _SHIFTED_CHANNEL if shifted else None)
    tenure_scale = np.select([contract == "monthly", contract == "annual"], [10.0, 22.0], 34.0)
    tenure = np.clip(np.round(rng.gamma(1.6, tenure_scale)), 0, 72)
    tier_base = np.select([tier == "basic", tier == "standard"], [30.0, 60.0], 95.0)
    monthly = np.clip(tier_base + rng.normal(0, 12, n), 10, 180)
    usage = np.clip(rng.lognormal(3.3, 0.6, n) * (1.5 if shifted else 1.0), 0, 600)
    seconds = rng.uniform(0, days * 86_400, n)
    return pd.DataFrame(
        {
            ID: [f"C{i:08d}" for i in range(id_offset, id_offset + n)],
            TIMESTAMP: start + pd.to_timedelta(np.sort(seconds), unit="s"),
            "tenure_months": tenure.astype("int64"),
            "monthly_charges": monthly.round(2),
            "total_charges": np.maximum(monthly * tenure + rng.normal(0, 40, n), 0).round(2),
            "support_calls": np.clip(rng.poisson(_COMPETITOR_SUPPORT_CALLS_MEAN if competitor else _SUPPORT_CALLS_MEAN, n), 0, 20).astype("int64"),
            "data_usage_gb": usage.round(2),
            "num_products": np.clip(1 + rng.poisson(1.0, n), 1, 8).astype("int64"),
            "age": np.clip(np.round(rng.normal(45, 14, n)), 18, 90).astype("int64"),
            "days_since_last_login": np.clip(np.round(rng.exponential(8, n)), 0, 365).astype("int64"),
            "payment_delay_days": np.clip(np.round(rng.exponential(3, n)), 0, 120).astype("int64"),
            "discount_pct": rng.choice([0.0, 5.0, 10.0, 15.0, 20.0, 30.0], n, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]),
            "contract_type": contract,
            "plan_tier": tier,
            "region": _categorical(rng, "region", n),
            "payment_method": _categorical(rng, "payment_method", n),
            "acquisition_channel": channel,
        }
    )


def churn_probability(df: pd.DataFrame, *, concept_drift: bool) -> np.ndarray:
    """The true label mechanism. Concept drift replaces it while the inputs stay the same."""
    c = df["contract_type"].to_numpy()
    tenure = df["tenure_months"].to_numpy()
    late = 0.06 * (df["payment_delay_days"].to_numpy() - 3)
    if concept_drift:
        # A competitor poaches long-standing premium, heavy-usage and e-wallet customers;
        # contract type and support calls stop mattering.
        tier = df["plan_tier"].to_numpy()
        z = (
            -1.0
            + late
            + np.where(tier == "premium", 1.6, 0.0)
            + np.where(tier == "basic", -0.9, 0.0)
            + 0.025 * (df["data_usage_gb"].to_numpy() - 30)
            + np.where(df["payment_method"].to_numpy() == "e_wallet", 1.1, 0.0)
            + 0.03 * (tenure - 24)
        )
    else:
        z = (
            -1.6
            + late
            + np.where(c == "monthly", 1.3, 0.0)
            + np.where(c == "two_year", -1.2, 0.0)
            - 0.045 * (tenure - 24)
            + 0.018 * (df["monthly_charges"].to_numpy() - 60)
            + 0.04 * (df["days_since_last_login"].to_numpy() - 8)
            - 0.03 * df["discount_pct"].to_numpy()
            - 0.3 * (df["num_products"].to_numpy() - 2)
            + np.where(df["payment_method"].to_numpy() == "check", 0.5, 0.0)
            + 0.5 * (df["support_calls"].to_numpy() - 1.2)
        )
    return 1.0 / (1.0 + np.exp(-z))


def spend_next_month(rng: np.random.Generator, df: pd.DataFrame, *, concept_drift: bool) -> np.ndarray:
    """The regression target: next month's bill. Concept drift: the business answers the competitor
    with a 30% retention discount for premium and heavy-usage customers, on the same inputs."""
    charges, usage = df["monthly_charges"].to_numpy(), df["data_usage_gb"].to_numpy()
    bill = charges * (1 - df["discount_pct"].to_numpy() / 100) + 0.4 * np.maximum(usage - 30, 0)
    if concept_drift:
        bill = bill * np.where((df["plan_tier"].to_numpy() == "premium") | (usage > 40), 0.7, 1.0)
    return np.round(bill + rng.normal(0, 4, len(df)), 2)


def plan_change(rng: np.random.Generator, df: pd.DataFrame, *, concept_drift: bool) -> np.ndarray:
    """The multiclass target: what a customer does with the plan next month. Concept drift: the
    competitor's cheaper plan makes premium and heavy-usage customers downgrade, whatever they call
    support about, and basic customers stop upgrading."""
    tier, usage = df["plan_tier"].to_numpy(), df["data_usage_gb"].to_numpy()
    products, calls = df["num_products"].to_numpy(), df["support_calls"].to_numpy()
    upgrade = -1.0 + 0.06 * (usage - 30) + 1.0 * (products - 2) + np.select([tier == "basic", tier == "premium"], [1.5, -3.0], 0.0)
    downgrade = (-1.2 + 0.15 * (df["payment_delay_days"].to_numpy() - 3) + 0.04 * (df["monthly_charges"].to_numpy() - 60)
                 + np.select([tier == "premium", tier == "basic"], [1.0, -2.0], 0.0))
    if concept_drift:
        downgrade = downgrade + np.where((tier == "premium") | (usage > 40), 2.5, -1.0)
        upgrade = upgrade - np.where(tier == "basic", 2.5, 0.0)
    else:
        downgrade = downgrade + 1.2 * (calls - 1.2)
    logits = np.stack([np.zeros(len(df)), upgrade, downgrade], axis=1)
    chance = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    picked = (chance.cumsum(axis=1) < rng.random(len(df))[:, None]).sum(axis=1)
    return np.asarray(PLAN_CHANGES, dtype=object)[picked]


def _spoil(rng: np.random.Generator, batch: pd.DataFrame) -> pd.DataFrame:
    """The data-quality incident: an upstream job starts sending charges in cents, and tenure goes missing."""
    bad = batch.copy()
    bad["monthly_charges"] = bad["monthly_charges"] * 100
    tenure = bad["tenure_months"].astype("float64")
    tenure[rng.random(len(bad)) < 0.2] = np.nan
    bad["tenure_months"] = tenure
    return bad


@dataclass(frozen=True)
class GeneratedDemo:
    reference_rows: int
    days: tuple[DayPlan, ...]


def _labels(rng: np.random.Generator, df: pd.DataFrame, target: str, *, concept_drift: bool) -> np.ndarray:
    if target == SPEND:
        return spend_next_month(rng, df, concept_drift=concept_drift)
    if target == PLAN_CHANGE:
        return plan_change(rng, df, concept_drift=concept_drift)
    return (rng.random(len(df)) < churn_probability(df, concept_drift=concept_drift)).astype("int64")


def generate(cfg: DemoConfig, data: DataConfig, target: str = TARGET) -> GeneratedDemo:
    """Write the reference period, the batches and late label files of ``cfg.scenario``: churn
    (``target``: TARGET, churn; SPEND, next month's bill; or PLAN_CHANGE, keep/upgrade/downgrade) or loans (``driftloop.loans``). Deterministic by seed."""
    if cfg.scenario == "loans":
        from driftloop import loans

        return loans.generate(cfg, data)
    if target not in (TARGET, SPEND, PLAN_CHANGE):
        raise ValueError(f"the demo generates target {TARGET!r}, {SPEND!r} or {PLAN_CHANGE!r}, not {target!r}")
    rng = np.random.default_rng(cfg.seed)
    for folder in (data.incoming, data.labels, data.reference.parent):
        folder.mkdir(parents=True, exist_ok=True)

    reference = customers(
        rng, cfg.reference_rows, pd.Timestamp(cfg.reference_start, tz="UTC"), cfg.reference_days,
        shifted=False, id_offset=0,
    )
    reference[target] = _labels(rng, reference, target, concept_drift=False)
    reference.to_parquet(data.reference, index=False)

    days = plan(cfg)
    labels_by_arrival: dict[str, list[pd.DataFrame]] = {}
    for d in days:
        batch = customers(
            rng, cfg.rows_per_batch, pd.Timestamp(d.batch_id, tz="UTC"), 1,
            shifted=d.covariate_shift, id_offset=cfg.reference_rows + d.day * 1_000_000, competitor=d.concept_drift,
        )
        y = _labels(rng, batch, target, concept_drift=d.concept_drift)
        labels_by_arrival.setdefault(d.labels_arrive, []).append(pd.DataFrame({ID: batch[ID], target: y}))
        if d.quality_incident:
            batch = _spoil(rng, batch)
        path = data.incoming / f"{d.batch_id}.{data.batch_format}"
        if data.batch_format == "csv":
            batch.to_csv(path, index=False)
        else:
            batch.to_parquet(path, index=False)
    for arrival, frames in labels_by_arrival.items():
        pd.concat(frames, ignore_index=True).to_parquet(data.labels / f"{arrival}.parquet", index=False)
    return GeneratedDemo(reference_rows=len(reference), days=tuple(days))


# --- the demo's own folders ---------------------------------------------------------------
# The demo writes its data and resets it between runs, so it must never touch a folder that holds
# someone's work. It keeps a manifest, beside the config, of the paths it has made its own: a path
# is claimed only while it is empty or absent, and only claimed paths are ever reset.
MANIFEST = ".driftloop-demo.json"


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def demo_paths(cfg: Config, stores: bool = True) -> list[Path]:
    """Everything a demo run writes: its data, the loop's logs and reports and, with ``stores``, a local
    MLflow store and ledger (which `make demo` resets, and `driftloop demo-data` leaves to whoever runs them)."""
    data = cfg.data
    paths = [data.incoming, data.labels, data.quarantine, data.predictions, data.reports, data.reference.parent]
    if stores:
        paths.append(_sqlite_file(cfg.ledger.url))
        if _sqlite_file(cfg.registry.tracking_uri):  # a tracking server keeps its own store
            paths += [cfg.registry.artifact_root, _sqlite_file(cfg.registry.tracking_uri)]
    return [p.resolve() for p in paths if p is not None]


def claim(cfg: Config, config_dir: Path, stores: bool = True) -> list[Path]:
    """Make the demo's paths its own, or refuse in one line, writing nothing, if one already holds
    files the demo did not put there (a config of your own, say). Without ``stores``, only the data
    folders are claimed: `driftloop demo-data` beside a running stack (`make up`), whose ledger and MLflow
    store already hold files the stack made, writes data and touches no store."""
    manifest = config_dir / MANIFEST
    owned = set(json.loads(manifest.read_text(encoding="utf-8"))) if manifest.exists() else set()
    paths = demo_paths(cfg, stores)
    foreign = [p for p in paths if str(p) not in owned and p.exists() and (p.is_file() or any(p.iterdir()))]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise DriftloopError(
            f"{foreign[0]}{more} already holds files the demo did not write, and the demo only writes to and resets "
            "folders of its own: give it a config whose data, ledger and MLflow paths are empty or absent, or move "
            f"{foreign[0]} away (in this checkout, `make clean` removes data/, .prefect/ and the local MLflow store)")
    manifest.write_text(json.dumps(sorted(owned | {str(p) for p in paths}), indent=1) + "\n", encoding="utf-8")
    return paths


def reset(cfg: Config, config_dir: Path) -> None:
    """Remove what an earlier demo run wrote: only paths the manifest says are the demo's."""
    for path in claim(cfg, config_dir):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
