"""Test accuracy of an sklearn stand-in for the default FP32 MLP on the default synthetic data.

Stand-in: StandardScaler + MLPClassifier(hidden (256, 256), Adam lr 1e-3, early stopping) on a
stratified 70/15/15 split (the validation share is only left out, as the workflow does).
Usage: python benchmarks/synthetic_accuracy.py [--n-flows N] [--difficulty D] [--seed S]
"""

from __future__ import annotations

import argparse
import time

from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from quantbench.data.synthetic import LABEL, SyntheticConfig, generate_flows


def main() -> None:
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-flows", type=int, default=defaults.n_flows)
    parser.add_argument("--difficulty", type=float, default=defaults.difficulty)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    cfg = SyntheticConfig(n_flows=args.n_flows, difficulty=args.difficulty, seed=args.seed)

    start = time.perf_counter()
    df = generate_flows(cfg)
    generated = time.perf_counter() - start
    x, y = df.drop(columns=LABEL).to_numpy(float), df[LABEL].to_numpy()
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=cfg.seed
    )
    _, x_test, _, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=cfg.seed
    )
    model = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(256, 256), early_stopping=True, random_state=0),
    )
    model.fit(x_train, y_train)
    print(f"config: {cfg}")
    print(f"generation: {generated:.3f} s for {cfg.n_flows} flows")
    print(f"test accuracy: {model.score(x_test, y_test):.4f}")


if __name__ == "__main__":
    main()
