"""VAE world: a small torch VAE refit on its own samples of scikit-learn's 8x8 digits.

The paper used MNIST; ``sklearn.datasets.load_digits`` ships offline and shows the same
effect: latent spread under the generation-0 encoder shrinks and digit classes merge.
"""

from __future__ import annotations

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.simulate.data import Samples
from collapseguard.simulate.worlds.base import World

COVERAGE_SHARE = 0.02  # a class is still "found" when it gets at least 2% of generated digits
METRIC_SAMPLES = 500


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CollapseguardError("the vae world needs torch: pip install torch") from exc
    return torch


def _build_vae(latent: int, hidden: int):
    torch = _torch()
    nn = torch.nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
            self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
            self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64))

        def encode(self, x):
            h = self.enc(x)
            return self.mu(h), self.logvar(h)

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.dec(z), mu, logvar

    return VAE()


class VAEWorld(World):
    """Truth: scikit-learn's digits scaled to [0, 1]. Model: one VAE per seed."""

    name = "vae"
    primary_metric = "latent_std"
    higher_is_worse = False

    def __init__(self, seeds: int, latent: int = 8, hidden: int = 128, epochs: int = 30):
        super().__init__(seeds)
        if min(latent, hidden, epochs) < 1:
            raise CollapseguardError("vae needs --latent, --hidden and --epochs of at least 1")
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression

        digits = load_digits()
        self.images = digits.data.astype(np.float32) / 16.0  # (1797, 64)
        self.labels = digits.target
        self.latent, self.hidden, self.epochs = latent, hidden, epochs
        self.classifier = LogisticRegression(max_iter=2000).fit(self.images, self.labels)
        self.reference = None  # the generation-0 encoders, one per seed

    def params(self) -> dict:
        return {"latent": self.latent, "hidden": self.hidden, "epochs": self.epochs}

    def truth(self, n, rng):
        idx = rng.integers(len(self.images), size=(self.seeds, n))
        return Samples(self.images[idx])

    def _train(self, x: np.ndarray, seed: int):
        torch = _torch()
        torch.manual_seed(seed)
        vae = _build_vae(self.latent, self.hidden)
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        gen = torch.Generator().manual_seed(seed)
        for _ in range(self.epochs):
            for batch in torch.randperm(len(data), generator=gen).split(64):
                xb = data[batch]
                logits, mu, logvar = vae(xb)
                rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
                kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
                opt.zero_grad()
                ((rec + kl) / len(xb)).backward()
                opt.step()
        return vae.eval()

    def fit(self, data, rng):
        models = [self._train(x, int(rng.integers(2**31 - 1))) for x in data.x]
        if self.reference is None:
            self.reference = models
        return models

    def _generate(self, vae, n: int, seed: int) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            z = torch.randn(n, self.latent, generator=torch.Generator().manual_seed(seed))
            return torch.sigmoid(vae.dec(z)).numpy()

    def sample(self, model, n, rng):
        return Samples(np.stack([self._generate(v, n, int(rng.integers(2**31 - 1))) for v in model]))

    def metrics(self, model):
        torch = _torch()
        out = {"latent_std": [], "class_coverage": [], "recon_error": []}
        real = torch.from_numpy(self.images)
        for vae, ref in zip(model, self.reference):
            gen = self._generate(vae, METRIC_SAMPLES, seed=0)
            with torch.no_grad():
                mu, _ = ref.encode(torch.from_numpy(gen))
                recon = torch.sigmoid(vae.dec(vae.encode(real)[0]))
            out["latent_std"].append(float(mu.std(dim=0).mean()))
            share = np.bincount(self.classifier.predict(gen), minlength=10) / len(gen)
            out["class_coverage"].append(float((share >= COVERAGE_SHARE).mean()))
            out["recon_error"].append(float(((recon - real) ** 2).mean()))
        return {k: np.array(v) for k, v in out.items()}
