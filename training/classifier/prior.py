"""The zero-shot description prior: a baseline that needs no labels at all.

The pre-trained encoder embeds a dozen plain-English descriptions of attack reports and of other
news, and an article scores by how much closer it lies to the nearest attack description than to
the nearest other one (cosine similarity of mean-pooled embeddings). It measures what the base
model knows before any fine-tuning; a fine-tuned model that does not beat it on modern news has
thrown that knowledge away. It reads each article's first 128 tokens only, as a baseline may:
on two cores the full encoder costs as much per token as the model it is compared with.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.scoring.encoding import Encoder
from stream.scoring.text import clean
from training.model import import_torch

ATTACK_DESCRIPTIONS = (
    "A bomb exploded, killing and wounding people.",
    "A suicide bomber blew himself up in a crowded market.",
    "Gunmen opened fire on civilians, killing several people.",
    "Militants attacked a police station and killed officers.",
    "Terrorists kidnapped foreign workers and are holding them hostage.",
    "A politician was assassinated by unknown attackers.",
    "Insurgents ambushed a convoy with a roadside bomb.",
    "A car bomb went off outside a government building.",
    "Police arrested suspects in the bombing attack.",
    "A militant group claimed responsibility for the attack.",
    "Attackers set fire to a church in an arson attack.",
    "A gunman killed several people in a mass shooting at a school.",
)
OTHER_DESCRIPTIONS = (
    "The army launched an offensive and captured the town from rebels.",
    "Air strikes hit rebel positions and fighting continued.",
    "An earthquake killed hundreds of people.",
    "A plane crashed, killing everyone on board.",
    "The government passed a new anti-terrorism law.",
    "Parliament voted on the budget.",
    "The company reported higher quarterly profits.",
    "The team won the championship final.",
    "Scientists announced a new discovery.",
    "A man was convicted of murdering his wife.",
    "Diplomats met to negotiate a peace agreement.",
    "Thousands of protesters marched in the capital.",
    "A film won the top award at the festival.",
)


class DescriptionPrior:
    def __init__(
        self, base_encoder: Any, encoder: Encoder, batch_size: int = 32, first_tokens: int = 128
    ) -> None:
        self.model = base_encoder
        self.encoder = encoder
        self.batch_size = batch_size
        self.first_tokens = first_tokens
        self.attack = self._embed([clean(d) for d in ATTACK_DESCRIPTIONS])
        self.other = self._embed([clean(d) for d in OTHER_DESCRIPTIONS])

    def _embed(self, texts: Sequence[str], desc: str | None = None) -> npt.NDArray[np.float32]:
        """Normalised mean-pooled embeddings of each text's first window."""
        torch = import_torch()
        cut = self.first_tokens - 1
        windows = [
            np.append(w[:cut], self.encoder.sep_id) if len(w) > self.first_tokens else w
            for w in (self.encoder.windows_of(ids)[0] for ids in self.encoder.token_ids(texts))
        ]
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out = np.zeros((len(windows), self.model.config.hidden_size), dtype=np.float32)
        self.model.eval()
        with torch.inference_mode():
            starts = range(0, len(order), self.batch_size)
            for start in tqdm(starts, desc=desc, leave=False, disable=desc is None, unit="batch"):
                rows = order[start : start + self.batch_size]
                batch = self.encoder.pad([windows[i] for i in rows], np.asarray(rows))
                mask = torch.from_numpy(batch.attention_mask)
                hidden = self.model(
                    input_ids=torch.from_numpy(batch.input_ids), attention_mask=mask
                ).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out

    def score(self, texts: Sequence[str], desc: str | None = None) -> npt.NDArray[np.float64]:
        """Nearest attack description's similarity minus the nearest other one's, per text."""
        embedded = self._embed(texts, desc)
        closest_attack = (embedded @ self.attack.T).max(axis=1)
        closest_other = (embedded @ self.other.T).max(axis=1)
        return np.asarray(closest_attack - closest_other, dtype=np.float64)
