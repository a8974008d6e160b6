"""Regenerate the bundled demo inputs (deterministic): a small trained MLP and an embedding table.

    .venv/bin/python assets/demo/make_demo_inputs.py

The MLP is trained for a few hundred steps on a synthetic regression task so its weights have the
statistics of trained weights rather than of a fresh initialisation.
"""

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

out = Path(__file__).parent / "inputs"
out.mkdir(exist_ok=True)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                          torch.nn.GELU(), torch.nn.Linear(256, 16))
teacher = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
for _ in range(400):
    x = torch.randn(128, 64)
    loss = torch.nn.functional.mse_loss(net(x), teacher(x).detach())
    opt.zero_grad()
    loss.backward()
    opt.step()
state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
save_file(state, str(out / "tiny_mlp.safetensors"), metadata={"task": "nctk demo", "steps": "400"})
save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(out / "tiny_mlp_bf16.safetensors"))
emb = torch.nn.functional.normalize(torch.tanh(torch.randn(2000, 256)) @ net[2].weight.detach()[:, :64], dim=1)
np.save(out / "embeddings_fp16.npy", emb.numpy().astype(np.float16))
print("wrote", sorted(p.name for p in out.iterdir()))

# A photograph for the lossy image demo: the centre 384x256 of Kodak's kodim23 (the Kodak suite is free to
# redistribute; it is nctk's image test set, used here only to show the codec, never for training).
kodak = Path(__file__).resolve().parents[3] / "shared" / "data" / "images" / "kodak" / "kodim23.png"
if kodak.is_file():
    from PIL import Image

    with Image.open(kodak) as im:
        w, h = im.size
        photo = Path(__file__).parent / "photo"
        photo.mkdir(exist_ok=True)
        im.convert("RGB").crop((w // 2 - 192, h // 2 - 128, w // 2 + 192, h // 2 + 128)).save(
            photo / "kodim23_crop.png", optimize=True)
