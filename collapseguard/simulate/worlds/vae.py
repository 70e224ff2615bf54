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


class BatchedVAE:
    """S independent MLP VAEs (64 -> hidden -> latent -> hidden -> 64) trained in one pass.

    Weights carry a leading seed axis and every layer is a batched matmul, so the seeds'
    gradients never mix: Adam on the stack equals S separate trainings.
    """

    def __init__(self, seeds: int, latent: int, hidden: int, generator):
        torch = _torch()
        shapes = {"enc": (64, hidden), "mu": (hidden, latent), "logvar": (hidden, latent),
                  "dec1": (latent, hidden), "dec2": (hidden, 64)}
        self.params = {}
        for name, (fan_in, fan_out) in shapes.items():
            bound = 1 / fan_in**0.5  # torch.nn.Linear's default initialisation
            w = (torch.rand(seeds, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(seeds, 1, fan_out, generator=generator) * 2 - 1) * bound
            self.params[name] = (w.requires_grad_(), b.requires_grad_())
        self.latent = latent

    def _linear(self, name, x):
        w, b = self.params[name]
        return x @ w + b  # (S, n, in) @ (S, in, out)

    def encode(self, x):
        """Posterior mean and log-variance, each (S, n, latent)."""
        h = self._linear("enc", x).relu()
        return self._linear("mu", h), self._linear("logvar", h)

    def decode_logits(self, z):
        """Pixel logits (S, n, 64)."""
        return self._linear("dec2", self._linear("dec1", z).relu())

    def parameters(self):
        return [t for pair in self.params.values() for t in pair]


class VAEWorld(World):
    """Truth: scikit-learn's digits scaled to [0, 1]. Model: one VAE per seed, trained together."""

    name = "vae"
    point_cost = 4_000_000.0  # Adam steps, whatever the sample size
    accumulate_growth = 0.0
    primary_metric = "latent_std"
    higher_is_worse = False

    def __init__(self, seeds: int, latent: int = 8, hidden: int = 128, steps: int = 500, batch: int = 64):
        super().__init__(seeds)
        if min(latent, hidden, steps, batch) < 1:
            raise CollapseguardError("vae needs latent, hidden, steps and batch of at least 1 (-o steps=500)")
        from sklearn.datasets import load_digits
        from sklearn.neighbors import KNeighborsClassifier

        digits = load_digits()
        self.images = digits.data.astype(np.float32) / 16.0  # (1797, 64)
        self.labels = digits.target
        self.latent, self.hidden, self.steps, self.batch = latent, hidden, steps, batch
        self.classifier = KNeighborsClassifier(n_neighbors=5).fit(self.images, self.labels)
        self.reference = None  # the generation-0 encoders, one per seed

    def params(self) -> dict:
        return {"latent": self.latent, "hidden": self.hidden, "steps": self.steps, "batch": self.batch}

    def truth(self, n, rng):
        idx = rng.integers(len(self.images), size=(self.seeds, n))
        return Samples(self.images[idx])

    def fit(self, data, rng):
        """Train every seed's VAE for the same number of Adam steps (so workflows cost alike)."""
        torch = _torch()
        gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        vae = BatchedVAE(self.seeds, self.latent, self.hidden, gen)
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))  # (S, n, 64)
        rows = torch.arange(self.seeds)[:, None]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # these matrices are tiny: threads only add overhead
        try:
            for _ in range(self.steps):
                idx = torch.randint(x.shape[1], (self.seeds, min(self.batch, x.shape[1])), generator=gen)
                xb = x[rows, idx]
                mu, logvar = vae.encode(xb)
                z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                rec = torch.nn.functional.binary_cross_entropy_with_logits(vae.decode_logits(z), xb, reduction="sum")
                kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
                opt.zero_grad()
                ((rec + kl) / xb.shape[1]).backward()
                opt.step()
        finally:
            torch.set_num_threads(threads)
        if self.reference is None:
            self.reference = vae
        return vae

    def _generate(self, vae, n: int, seed: int):
        torch = _torch()
        with torch.no_grad():
            z = torch.randn(self.seeds, n, self.latent, generator=torch.Generator().manual_seed(seed))
            return torch.sigmoid(vae.decode_logits(z))

    def sample(self, model, n, rng):
        return Samples(self._generate(model, n, int(rng.integers(2**31 - 1))).numpy())

    def metrics(self, model):
        torch = _torch()
        real = torch.from_numpy(self.images).expand(self.seeds, -1, -1)
        gen = self._generate(model, METRIC_SAMPLES, seed=0)  # (S, n, 64)
        with torch.no_grad():
            mu, _ = self.reference.encode(gen)
            recon = torch.sigmoid(model.decode_logits(model.encode(real)[0]))
        predicted = self.classifier.predict(gen.reshape(-1, 64).numpy()).reshape(self.seeds, -1)
        share = np.stack([np.bincount(p, minlength=10) for p in predicted]) / predicted.shape[1]
        return {
            "latent_std": mu.std(dim=1).mean(dim=1).numpy().astype(float),
            "class_coverage": (share >= COVERAGE_SHARE).mean(axis=1),
            "recon_error": ((recon - real) ** 2).mean(dim=(1, 2)).numpy().astype(float),
        }
