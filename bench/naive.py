"""The tutorial way, for comparison: one message at a time through a transformers pipeline on torch.

Same fine-tuned weights as the bundle (the PyTorch checkpoint training keeps), same broker;
each message is polled, classified with `pipeline("text-classification")(text, truncation=True)`
(the first 512 tokens, long reports cut short), and its score produced before the next poll.
"""

import json
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic


def text_classification_pipeline(checkpoint: Path) -> Any:
    """A transformers pipeline around the fine-tuned mean-pooling classifier."""
    import torch
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    from training.model import load_checkpoint

    classifier, tokenizer, _calibration = load_checkpoint(checkpoint)
    config = classifier.encoder.config
    config.num_labels = 1
    config.id2label, config.label2id = {0: "anomaly"}, {"anomaly": 0}

    class MeanPooledForSequenceClassification(PreTrainedModel):  # type: ignore[misc]
        config_class = type(config)
        base_model_prefix = "wirewatch"

        def __init__(self) -> None:
            super().__init__(config)
            self.classifier = classifier

        def forward(
            self, input_ids: Any = None, attention_mask: Any = None, **_: Any
        ) -> SequenceClassifierOutput:
            return SequenceClassifierOutput(logits=self.classifier(input_ids, attention_mask).unsqueeze(-1))

    model = MeanPooledForSequenceClassification().eval()
    torch.set_grad_enabled(False)
    return pipeline(
        "text-classification", model=model, tokenizer=tokenizer, device=-1, function_to_apply="sigmoid"
    )


def measure(bootstrap: str, checkpoint: Path, feed: list[tuple[str, bytes]]) -> float:
    """Articles per second of the per-message consumer over the feed (warm-up excluded)."""
    classify = text_classification_pipeline(checkpoint)
    tag = uuid.uuid4().hex[:8]
    source, target = f"naive-{tag}-in", f"naive-{tag}-out"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in (source, target)]
    ).values():
        future.result(timeout=20)
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in feed:
        producer.produce(source, value=value, key=key.encode())
    producer.flush(30)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"naive-{tag}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([source])
    classify("warm up", truncation=True)
    done, started = 0, None
    deadline = time.monotonic() + 1800
    while done < len(feed) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error() is not None:
            continue
        started = started or time.perf_counter()
        article = json.loads(message.value())
        text = f"{article.get('title') or ''}. {article['text']}"
        # truncation=True as tutorials write it: cut at the tokenizer's model_max_length (512).
        result = classify(text, truncation=True)[0]
        producer.produce(
            target, key=message.key(), value=json.dumps({"id": article["id"], "score": result["score"]})
        )
        producer.poll(0)
        done += 1
    producer.flush(30)
    consumer.close()
    if started is None or done < len(feed):
        raise RuntimeError(f"the naive consumer scored {done} of {len(feed)} articles")
    return done / (time.perf_counter() - started)
