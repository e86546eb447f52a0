"""The second shipped scenario: a car-loan book, exported weekly as CSV.

Unlike the churn demo it looks like a team's own data: weekly batches named by the week's last
day, CSV files, a boolean feature (``has_cosigner``), two passthrough columns an upstream
system adds (``bureau_score``, a credit bureau's own score, and ``exported_at``), and a model of
the team's own (``examples/loans/models.py``). Labels (default within the first payments)
arrive two weeks after their batch. At known batches the export sends incomes in thousands
(a quality incident), the dealer network shifts to online and newer cars (a covariate shift the
default mechanism ignores), and rising rates make long, highly leveraged loans default more
(a concept drift).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from driftloop.config import DataConfig, DemoConfig

ID, TIMESTAMP, TARGET = "loan_id", "applied_at", "defaulted"
NUMERIC = ("amount", "term_months", "income", "debt_to_income", "credit_score", "vehicle_age_years")
CATEGORICAL = ("vehicle_type", "channel", "region", "has_cosigner")
PASSTHROUGH = ("bureau_score", "exported_at")
_CHANNELS, _SHIFTED_CHANNELS = (0.55, 0.15, 0.30), (0.30, 0.50, 0.20)  # dealer, online, branch


def applications(rng: np.random.Generator, n: int, end: pd.Timestamp, days: int, *, shifted: bool, id_offset: int) -> pd.DataFrame:
    """``n`` loan applications over the ``days`` days up to ``end``; ``shifted``: the online, newer-car mix."""
    vehicle = rng.choice(np.array(["new", "used"], dtype=object), n, p=(0.6, 0.4) if shifted else (0.4, 0.6))
    age = np.where(vehicle == "new", 0, np.clip(np.round(rng.gamma(2.0, 2.5 if not shifted else 1.5, n)), 1, 20))
    income = np.round(rng.lognormal(10.9, 0.4, n), -2)
    amount = np.round(np.clip(rng.normal(24_000, 8_000, n) + np.where(vehicle == "new", 9_000, 0), 3_000, 80_000), -2)
    term = rng.choice([36, 48, 60, 72, 84], n, p=(0.15, 0.25, 0.3, 0.2, 0.1))
    dti = np.clip(rng.beta(2.2, 4.5, n) * 0.9, 0.02, 0.85).round(3)
    credit = np.clip(np.round(rng.normal(690, 60, n)), 420, 850)
    seconds = rng.uniform(0, days * 86_400, n)
    frame = pd.DataFrame({
        ID: [f"L{i:08d}" for i in range(id_offset, id_offset + n)],
        TIMESTAMP: end - pd.to_timedelta(days * 86_400 - np.sort(seconds), unit="s"),
        "amount": amount,
        "term_months": term.astype("int64"),
        "income": income,
        "debt_to_income": dti,
        "credit_score": credit.astype("int64"),
        "vehicle_age_years": age.astype("int64"),
        "vehicle_type": vehicle,
        "channel": rng.choice(np.array(["dealer", "online", "branch"], dtype=object), n, p=_SHIFTED_CHANNELS if shifted else _CHANNELS),
        "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n, p=(0.3, 0.25, 0.25, 0.2)),
        "has_cosigner": rng.random(n) < 0.25,
    })
    # The bureau's own score: correlated with the credit score, kept for reference, never a feature.
    frame["bureau_score"] = np.clip(credit + rng.normal(0, 25, n), 300, 900).round()
    frame["exported_at"] = (end + pd.Timedelta(hours=2)).isoformat()
    return frame


def default_probability(df: pd.DataFrame, *, concept_drift: bool) -> np.ndarray:
    """The true label mechanism. Rising rates make long, leveraged loans default more; the rest stays."""
    dti = df["debt_to_income"].to_numpy()
    long_term = df["term_months"].to_numpy() >= 72
    z = (-2.0 + 4.0 * (dti - 0.3) - 0.012 * (df["credit_score"].to_numpy() - 690)
         + np.where(df["vehicle_type"].to_numpy() == "used", 0.3, 0.0)
         - np.where(df["has_cosigner"].to_numpy(), 0.6, 0.0) + np.where(long_term, 0.4, 0.0))
    if concept_drift:
        z = z + 5.0 * np.maximum(dti - 0.3, 0) + np.where(long_term, 1.2, 0.0) + 0.004 * (df["credit_score"].to_numpy() - 690)
    return 1.0 / (1.0 + np.exp(-z))


def _spoil(batch: pd.DataFrame) -> pd.DataFrame:
    """The quality incident: the export starts writing incomes in thousands."""
    return batch.assign(income=(batch["income"] / 1000).round(1))


def generate(cfg: DemoConfig, data: DataConfig):
    """Write the reference period (parquet), weekly CSV batches and late CSV label files. Deterministic by seed."""
    from driftloop.demo import GeneratedDemo, plan  # the plan and result types are the churn demo's

    rng = np.random.default_rng(cfg.seed)
    for folder in (data.incoming, data.labels, data.reference.parent):
        folder.mkdir(parents=True, exist_ok=True)
    reference_end = pd.Timestamp(cfg.reference_start, tz="UTC") + pd.Timedelta(days=cfg.reference_days)
    reference = applications(rng, cfg.reference_rows, reference_end, cfg.reference_days, shifted=False, id_offset=0)
    reference[TARGET] = (rng.random(len(reference)) < default_probability(reference, concept_drift=False)).astype("int64")
    reference.to_parquet(data.reference, index=False)

    batches = plan(cfg, data.period_days)
    labels_by_arrival: dict[str, list[pd.DataFrame]] = {}
    for b in batches:
        end = pd.Timestamp(b.batch_id, tz="UTC") + timedelta(days=1)  # the batch covers the week up to its date
        batch = applications(rng, cfg.rows_per_batch, end, data.period_days, shifted=b.covariate_shift,
                             id_offset=cfg.reference_rows + b.day * 1_000_000)
        y = (rng.random(len(batch)) < default_probability(batch, concept_drift=b.concept_drift)).astype("int64")
        labels_by_arrival.setdefault(b.labels_arrive, []).append(pd.DataFrame({ID: batch[ID], TARGET: y}))
        (_spoil(batch) if b.quality_incident else batch).to_csv(data.incoming / f"{b.batch_id}.csv", index=False)
    for arrival, frames in labels_by_arrival.items():
        pd.concat(frames, ignore_index=True).to_csv(data.labels / f"{arrival}.csv", index=False)
    return GeneratedDemo(reference_rows=len(reference), days=tuple(batches))
