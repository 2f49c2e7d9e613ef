"""A small transformer language model with topographic MLP layers.

    python docs/recipes/transformer_lm.py        # a character model of this file, on the CPU

Each encoder layer's MLP expansion (``linear1``, d_model -> dim_feedforward units) gets its
units on a 2-D sheet and the Weight-Similarity loss, found by name: neighbouring MLP units are
pulled towards similar incoming weights.  This is the weight-smoothing flavour of TopoNets
(Deb et al., "TopoNets: High performing vision and language models with brain-like
topography", ICLR 2025), with torchtopo's neighbour-distance loss instead of their blurring
loss.  TopoLM (Rathi et al., "TopoLM: brain-like spatio-functional organization in a
topographic language model", ICLR 2025) instead asks neighbouring units for correlated
*activations*: attach ``tt.SpatialCorrelation`` or ``tt.ActivationSimilarity`` to the same
layers for that.
"""
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import torchtopo as tt


class TinyLM(nn.Module):
    def __init__(self, vocab, d_model=64, n_layers=2, n_heads=4, d_ff=256, context=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        T = tokens.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        h = self.encoder(self.embed(tokens) + self.pos[:T], mask=causal, is_causal=True)
        return self.head(h)


def topographic_mlps(model, strength=1.0):
    """WS on every ``linear1`` (the MLP's hidden units) of the encoder, by module name."""
    d_ff = model.encoder.layers[0].linear1.out_features
    side = math.isqrt(d_ff)
    assert side * side == d_ff, "choose dim_feedforward = side² for a square sheet"
    names = [n for n, _ in model.named_modules() if n.endswith(".linear1")]
    return tt.attach(model, {n: tt.WeightSimilarity(strength=strength, grid=(side, side),
                                                    distance="cosine") for n in names})


def batches(text, context, batch, steps, generator):
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
    for _ in range(steps):
        i = torch.randint(0, len(data) - context - 1, (batch,), generator=generator)
        chunk = torch.stack([data[j:j + context + 1] for j in i.tolist()])
        yield chunk[:, :-1], chunk[:, 1:]  # predict the next byte


def main(steps=300, batch=16, context=64, d_model=64, d_ff=256, strength=1.0):
    torch.manual_seed(0)
    text = Path(__file__).read_text(encoding="utf-8") * 4  # any text corpus will do
    model = TinyLM(256, d_model=d_model, d_ff=d_ff, context=context)
    reg = topographic_mlps(model, strength)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    history = []
    for step, (x, y) in enumerate(batches(text, context, batch, steps, g)):
        logits = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss = ce + reg.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(ce.detach()))
        if step % 100 == 0 or step == steps - 1:
            ws = {k.split(".")[2]: round(float(v), 3) for k, v in reg.losses().items()}
            print(f"step {step}: cross-entropy {history[-1]:.3f} nats/byte, WS {ws}")
    return model, reg, history


if __name__ == "__main__":
    main()
