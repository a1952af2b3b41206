"""The synthetic traffic generator: schema, determinism, physics per class, difficulty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from quantbench.data.synthetic import (
    CLASS_SHARES,
    CLASSES,
    FEATURES,
    INT_FEATURES,
    LABEL,
    SyntheticConfig,
    generate_flows,
    write_flows_csv,
)


@pytest.fixture(scope="module")
def easy() -> pd.DataFrame:
    return generate_flows(SyntheticConfig(n_flows=6000, difficulty=0.0, seed=3))


@pytest.fixture(scope="module")
def default() -> pd.DataFrame:
    return generate_flows(SyntheticConfig(n_flows=6000, seed=3))


def by_class(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df[df[LABEL] == name]


def test_columns_and_dtypes(default):
    assert list(default.columns) == [*FEATURES, LABEL]
    assert 20 <= len(FEATURES) <= 40
    for col in FEATURES:
        expected = np.int64 if col in INT_FEATURES else np.float64
        assert default[col].dtype == expected, col
    assert pd.api.types.is_string_dtype(default[LABEL])
    assert len(default) == 6000


@pytest.mark.parametrize("fixture", ["easy", "default"])
def test_class_shares(fixture, request):
    df = request.getfixturevalue(fixture)
    shares = df[LABEL].value_counts(normalize=True)
    assert set(shares.index) == set(CLASSES)
    for name, share in zip(CLASSES, CLASS_SHARES, strict=True):
        assert shares[name] == pytest.approx(share, abs=0.03)


@pytest.mark.parametrize("difficulty", [0.0, 0.35, 1.0])
def test_values_are_finite_non_negative_and_consistent(difficulty):
    df = generate_flows(SyntheticConfig(n_flows=3000, difficulty=difficulty, seed=5))
    x = df[list(FEATURES)].to_numpy(float)
    assert np.isfinite(x).all()
    assert (x >= 0).all()
    assert (df["Total Fwd Packets"] >= 1).all()
    n = df["Total Fwd Packets"] + df["Total Backward Packets"]
    for prefix, count in (("Fwd", "Total Fwd Packets"), ("Bwd", "Total Backward Packets")):
        has = df[count] > 0
        lo, mean, hi = (df[f"{prefix} Packet Length {s}"][has] for s in ("Min", "Mean", "Max"))
        assert (lo <= mean + 1e-9).all() and (mean <= hi + 1e-9).all()
        assert (lo >= 40).all() and (hi <= 1500).all()
    assert (df["Flow IAT Min"] <= df["Flow IAT Mean"] + 1e-6).all()
    assert (df["Flow IAT Mean"] <= df["Flow IAT Max"] + 1e-6).all()
    assert (df["Flow IAT Max"] <= df["Flow Duration"] + 1).all()
    span = df["Flow IAT Mean"] * (n - 1)
    assert np.allclose(span, df["Flow Duration"], rtol=1e-6, atol=1.0)
    size = (df["Total Length of Fwd Packets"] + df["Total Length of Bwd Packets"]) / n
    assert np.allclose(size, df["Average Packet Size"])


def test_voip_is_20ms_small_symmetric_packets(easy):
    voip = by_class(easy, "voip")
    iat_ms = voip["Fwd IAT Mean"] / 1e3
    assert iat_ms.median() == pytest.approx(20.0, abs=0.5)
    assert (np.abs(iat_ms - 20.0) < 1.0).mean() > 0.6  # calls without silence suppression
    assert voip["Flow IAT Mean"].median() / 1e3 == pytest.approx(10.0, abs=0.5)  # two streams
    for prefix in ("Fwd", "Bwd"):
        assert voip[f"{prefix} Packet Length Mean"].between(55, 210).all()
    assert np.allclose(voip["Down/Up Ratio"], 1.0)


def test_video_is_long_with_mtu_packets_down_and_acks_up(easy):
    video, web = by_class(easy, "video"), by_class(easy, "web")
    assert video["Bwd Packet Length Mean"].median() > 1300
    assert video["Fwd Packet Length Mean"].median() < 150
    assert video["Down/Up Ratio"].median() == pytest.approx(2.0, abs=0.1)
    assert video["Flow Duration"].median() > 20 * web["Flow Duration"].median()
    assert (video["Idle Mean"] > 0).all()  # OFF periods between segment downloads
    assert video["Idle Mean"].median() > 10 * video["Active Mean"].median()


def test_web_is_short_and_heavy_tailed(easy):
    web = by_class(easy, "web")
    assert web["Flow Duration"].median() < 5e6  # µs
    response = web["Total Length of Bwd Packets"]
    assert response.mean() > 2 * response.median()  # heavy tail
    assert (web["Total Length of Bwd Packets"] > web["Total Length of Fwd Packets"]).mean() > 0.9


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    paths = [tmp_path / f"{i}.csv" for i in range(3)]
    for path, seed in zip(paths, (11, 11, 12), strict=True):
        write_flows_csv(SyntheticConfig(n_flows=1000, seed=seed), path)
    first, again, other = (p.read_bytes() for p in paths)
    assert first == again
    assert first != other
    assert b"\r" not in first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.csv", "1.csv", "2.csv"]
    back = pd.read_csv(paths[0])
    assert list(back.columns) == [*FEATURES, LABEL]
    assert len(back) == 1000


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"difficulty": -0.1}, "-0.1"), ({"difficulty": 1.5}, "1.5"), ({"n_flows": 299}, "299")],
)
def test_config_validation_names_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        SyntheticConfig(**kwargs)


def _quick_accuracy(difficulty: float) -> float:
    df = generate_flows(SyntheticConfig(n_flows=3000, difficulty=difficulty, seed=9))
    x, y = np.log1p(df[list(FEATURES)].to_numpy(float)), df[LABEL].to_numpy()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return model.fit(x_tr, y_tr).score(x_te, y_te)


def test_difficulty_lowers_accuracy():
    easy, default, hard = (_quick_accuracy(d) for d in (0.0, 0.35, 0.8))
    assert easy > 0.97
    assert easy > default + 0.03
    assert default > hard + 0.03
