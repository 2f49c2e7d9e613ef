"""PyTorch Lightning: ``training_step`` adds ``reg.penalty()`` to the loss.

    pip install lightning
    python docs/recipes/lightning_module.py          # 2 epochs on random data, on the CPU

The regularizer is a plain attribute of the LightningModule (not a submodule: it holds no
parameters; the checkpoint stores the model's weights as usual).  Lightning's
``accumulate_grad_batches``, ``precision="bf16-mixed"`` and DDP strategies work unchanged:
one ``penalty()`` per ``training_step``, scaled by Lightning like the rest of the loss.
"""
import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import torchtopo as tt


class TopoClassifier(L.LightningModule):
    def __init__(self, ws: float = 1.0, as_: float = 0.5, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = tt.models.mnist_cnn()
        self.reg = tt.attach(self.model, {
            "fc1": tt.WeightSimilarity(strength=ws, distance="cosine"),
            "features.3": tt.ActivationSimilarity(grid=(8, 8), strength=as_),
        })

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        ce = F.cross_entropy(self(x), y)
        penalty = self.reg.penalty()  # right after the forward that it regularizes
        self.log_dict({"train/ce": ce, "train/topo": penalty}, prog_bar=True)
        return ce + penalty

    def validation_step(self, batch, batch_idx):  # no gradients: nothing is captured
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def random_loader(n=256, batch=32):  # stand-in data: replace by your DataLoader
    data = TensorDataset(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)))
    return DataLoader(data, batch_size=batch)


def main(**trainer_kwargs):
    torch.manual_seed(0)
    module = TopoClassifier()
    options = {"max_epochs": 2, "accelerator": "cpu", "logger": False, **trainer_kwargs}
    trainer = L.Trainer(**options)
    trainer.fit(module, random_loader(), random_loader(64))
    print({k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
    return module, trainer


if __name__ == "__main__":
    main()
