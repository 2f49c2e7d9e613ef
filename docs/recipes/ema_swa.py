"""An EMA or SWA copy of a model trained with a torchtopo regularizer.

    python docs/recipes/ema_swa.py            # EMA, then SWA, on random data

``torch.optim.swa_utils.AveragedModel`` keeps a running average of the weights.  The copy is
made here before ``tt.attach``, so it has no hooks at all; a copy made after attaching carries
disabled ones (a copy's forward never feeds the training model's regularizer).  To measure
the averaged weights, attach a second regularizer to the copy.
"""
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

import torchtopo as tt


def terms():
    return {"fc1": tt.WeightSimilarity(strength=1.0, distance="cosine")}


def train(average="ema", steps=100, batch=32, decay=0.99, swa_start=50):
    torch.manual_seed(0)
    model = tt.models.mnist_cnn()
    if average == "ema":  # the copy first, then the hooks
        avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                            use_buffers=True)
    else:  # SWA: an equal-weight average of the weights from swa_start on
        avg = AveragedModel(model)
    reg = tt.attach(model, terms())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    swa_sched = SWALR(opt, swa_lr=0.01, anneal_epochs=5) if average == "swa" else None

    # stand-in data: replace by your DataLoader
    loader = [(torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,)))
              for _ in range(steps)]
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y) + reg.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average == "ema":
            avg.update_parameters(model)  # after every optimizer step
        elif step >= swa_start:
            avg.update_parameters(model)
            swa_sched.step()
    if average == "swa":
        update_bn(loader, avg)  # SWA weights need their own BatchNorm statistics
    # (the EMA copy averages the BatchNorm buffers too: use_buffers=True)

    with tt.attach(avg.module, terms()) as avg_reg:  # measure the copy; removed on exit
        print(f"{average}: WS loss of the model {float(reg.losses()['fc1']):.4f}, "
              f"of the averaged copy {float(avg_reg.losses()['fc1']):.4f}")
    reg.remove()
    return model, avg


def main():
    train("ema")
    train("swa")


if __name__ == "__main__":
    main()
