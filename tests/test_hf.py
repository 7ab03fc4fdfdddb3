"""mmcourse.hf: the course's CLIP and VLM in Hugging Face transformers (notebook 11).

Only this file and notebook 11 import transformers. Everything runs offline on tiny configs.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import LlavaForConditionalGeneration  # noqa: E402

from mmcourse import contrastive as C  # noqa: E402
from mmcourse import hf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "a black pet sitting on the grass",
    "a white animal lying down in the snow, purring",
    "a ginger furry friend standing on a sofa",
    "a grey pet sitting on the beach, barking",
]
QUESTION = "what colour is the pet?"


def _images(n, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def clip_parts():
    tokenizer = hf.word_tokenizer(CAPTIONS)
    clip, processor = hf.tiny_clip(tokenizer, seed=0)
    return tokenizer, clip, processor


@pytest.fixture(scope="module")
def llava_parts():
    tokenizer = hf.word_tokenizer([*CAPTIONS, QUESTION, "USER: ASSISTANT:"], add_eos=False)
    model, processor = hf.tiny_llava(tokenizer, seed=0)
    return tokenizer, model, processor


def _clip_batch(processor, n=4):
    return processor(
        text=CAPTIONS[:n], images=hf.to_pil(_images(n)), return_tensors="pt", padding=True
    )


# --------------------------------------------------------------------------- tokenizer


def test_word_tokenizer_ids_and_specials():
    tok = hf.word_tokenizer(CAPTIONS)
    assert [tok.convert_tokens_to_ids(t) for t in hf.SPECIALS] == [0, 1, 2, 3, 4]
    ids = tok("A Black pet")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["a", "black", "pet"]
    assert tok("zebra")["input_ids"][1] == tok.unk_token_id
    no_eos = hf.word_tokenizer(CAPTIONS, add_eos=False)("a pet")["input_ids"]
    assert no_eos[0] == tok.bos_token_id and tok.eos_token_id not in no_eos


def test_word_tokenizer_rejects_bad_texts():
    with pytest.raises(ValueError, match="texts"):
        hf.word_tokenizer("a single string")
    with pytest.raises(TypeError, match="texts"):
        hf.word_tokenizer(["ok", 3])


def test_to_pil_round_trips_8_bit_values_and_checks_input():
    images = _images(2)
    pictures = hf.to_pil(images)
    back = torch.tensor(np.array(pictures[1])).permute(2, 0, 1) / 255
    assert pictures[0].size == (32, 32) and pictures[0].mode == "RGB"
    assert (back - images[1]).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="images"):
        hf.to_pil(torch.rand(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hf.to_pil(images * 2)


# --------------------------------------------------------------------------- CLIP


def test_tiny_clip_uses_the_tokenizers_special_ids(clip_parts):
    tokenizer, clip, _ = clip_parts
    text = clip.config.text_config
    assert text.vocab_size == len(tokenizer)
    assert (text.bos_token_id, text.eos_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    assert text.eos_token_id != 2  # 2 would switch CLIP to its legacy "argmax id" pooling


def test_as_tiny_clip_matches_clipmodel_embeddings_loss_and_logits(clip_parts):
    _, clip, processor = clip_parts
    batch = _clip_batch(processor)
    tiny = hf.as_tiny_clip(clip)
    with torch.no_grad():
        out = clip(**batch, return_loss=True)
        u, v, t = tiny(batch["pixel_values"], batch["input_ids"], batch["attention_mask"].bool())
    torch.testing.assert_close(u, out.image_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(v, out.text_embeds, atol=1e-6, rtol=0)
    torch.testing.assert_close(C.clip_loss(u, v, t), out.loss, atol=0, rtol=1e-6)
    torch.testing.assert_close(C.clip_logits(u, v, t), out.logits_per_image, atol=1e-5, rtol=1e-6)


def test_as_tiny_clip_shares_towers_and_copies_heads(clip_parts):
    _, clip, _ = clip_parts
    tiny = hf.as_tiny_clip(clip)
    assert tiny.image_encoder.vision_model is clip.vision_model  # shared: training one trains both
    assert tiny.image_projection.weight.data_ptr() != clip.visual_projection.weight.data_ptr()
    with torch.no_grad():
        tiny.text_projection.weight.mul_(2)
        tiny.logit_scale.fill_(1.5)
    hf.copy_heads_(tiny, clip)
    torch.testing.assert_close(clip.text_projection.weight, tiny.text_projection.weight)
    assert clip.logit_scale.item() == pytest.approx(1.5)
    with pytest.raises(TypeError, match="clip"):
        hf.as_tiny_clip(tiny)


def test_clipmodel_has_no_cap_until_clamped():
    tok = hf.word_tokenizer(CAPTIONS)
    clip, processor = hf.tiny_clip(tok, seed=1)
    tiny = hf.as_tiny_clip(clip)
    batch = _clip_batch(processor)
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(400.0))
        tiny.logit_scale.fill_(math.log(400.0))
        course = C.clip_loss(
            *tiny(batch["pixel_values"], batch["input_ids"], batch["attention_mask"].bool())
        )
        uncapped = clip(**batch, return_loss=True).loss
        hf.clamp_logit_scale_(clip)
        clamped = clip(**batch, return_loss=True).loss
    assert clip.logit_scale.item() == pytest.approx(math.log(100.0))
    assert abs(uncapped - course) > 0.1
    torch.testing.assert_close(clamped, course, atol=0, rtol=1e-6)


def test_train_clip_trains_the_hugging_face_model(clip_parts):
    tokenizer, _, processor = clip_parts
    clip, _ = hf.tiny_clip(tokenizer, seed=2)
    tiny = hf.as_tiny_clip(clip)
    before = clip.vision_model.embeddings.patch_embedding.weight.clone()
    batch = _clip_batch(processor)
    history = C.train_clip(
        tiny,
        batch["pixel_values"],
        batch["input_ids"],
        batch["attention_mask"].bool(),
        epochs=30,
        batch_size=4,
        lr=1e-2,
    )
    assert not torch.equal(before, clip.vision_model.embeddings.patch_embedding.weight)
    assert history.loss[-1] < 0.5 * history.loss[0]  # four pairs: easy to memorise


# --------------------------------------------------------------------------- LLaVA


def test_llava_processor_expands_image_to_one_placeholder_per_patch(llava_parts):
    tokenizer, model, processor = llava_parts
    prompt = processor.apply_chat_template(hf.chat(QUESTION), add_generation_prompt=True)
    assert prompt == f"USER: <image> {QUESTION} ASSISTANT:"
    inputs = processor(text=[prompt], images=hf.to_pil(_images(1)), return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == (32 // 8) ** 2
    with torch.no_grad():
        assert model(**inputs).logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))


def test_merge_image_tokens_is_what_llava_feeds_its_decoder(llava_parts):
    _, model, processor = llava_parts
    prompt = processor.apply_chat_template(hf.chat(QUESTION), add_generation_prompt=True)
    inputs = processor(text=[prompt] * 2, images=hf.to_pil(_images(2)), return_tensors="pt")
    seen = {}
    hook = model.model.language_model.register_forward_pre_hook(
        lambda m, a, kw: seen.update(x=kw["inputs_embeds"]), with_kwargs=True
    )
    with torch.no_grad():
        model(**inputs)
        states = model.model.vision_tower(inputs["pixel_values"], output_hidden_states=True)
        tokens = model.model.multi_modal_projector(states.hidden_states[-2][:, 1:])
        merged = hf.merge_image_tokens(
            model.get_input_embeddings()(inputs["input_ids"]),
            inputs["input_ids"],
            tokens,
            model.config.image_token_id,
        )
    hook.remove()
    torch.testing.assert_close(merged, seen["x"], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="placeholders"):
        hf.merge_image_tokens(merged, inputs["input_ids"], tokens[:1], model.config.image_token_id)


def test_course_projector_matches_llava_projector(llava_parts):
    """The one test that depends on mmcourse.vlm (its make_projector("mlp", ...))."""
    from mmcourse import vlm

    _, model, _ = llava_parts
    width_in = model.config.vision_config.hidden_size
    width_out = model.config.text_config.hidden_size
    course = vlm.make_projector("mlp", width_in, width_out)
    hf.copy_projector_(course, model)
    x = torch.randn(2, 16, width_in)
    with torch.no_grad():
        torch.testing.assert_close(model.model.multi_modal_projector(x), course(x))
    with pytest.raises(ValueError, match="course_projector"):
        hf.copy_projector_(vlm.make_projector("mlp", width_in + 1, width_out), model)


def test_vqa_batch_labels_only_the_answer_and_eos(llava_parts):
    tokenizer, _, processor = llava_parts
    batch = hf.vqa_batch(processor, _images(2), [QUESTION] * 2, ["black", "white"])
    for row, answer in zip(batch["labels"], ["black", "white"]):
        kept = row[row != -100].tolist()
        assert kept == [tokenizer.convert_tokens_to_ids(answer), tokenizer.eos_token_id]
        end = int((batch["input_ids"][0] != tokenizer.pad_token_id).sum())
        assert row[end - 1] == tokenizer.eos_token_id  # labels sit on the last real tokens
    with pytest.raises(ValueError, match="equal length"):
        hf.vqa_batch(processor, _images(2), [QUESTION], ["black"])


def test_train_vqa_then_generate_answers_and_round_trips(llava_parts, tmp_path):
    tokenizer, _, processor = llava_parts
    model, _ = hf.tiny_llava(tokenizer, seed=3)
    answers = ["black", "white", "black", "white"]
    images = torch.stack([torch.full((3, 32, 32), 0.05 if a == "black" else 0.95) for a in answers])
    batch = hf.vqa_batch(processor, images, [QUESTION] * 4, answers)
    losses = hf.train_vqa(model, batch, epochs=40, batch_size=4, lr=1e-2, seed=0)
    assert losses[-1] < 0.2 * losses[0]
    prompt = processor.apply_chat_template(hf.chat(QUESTION), add_generation_prompt=True)
    ask = processor(text=[prompt] * 4, images=hf.to_pil(images), return_tensors="pt")
    out = model.generate(**ask, max_new_tokens=2, do_sample=False)
    replies = tokenizer.batch_decode(out[:, ask["input_ids"].shape[1] :], skip_special_tokens=True)
    assert [r.strip() for r in replies] == answers
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    ask_again = type(processor).from_pretrained(tmp_path)(
        text=[prompt] * 4, images=hf.to_pil(images), return_tensors="pt"
    )
    assert torch.equal(again.generate(**ask_again, max_new_tokens=2, do_sample=False), out)


# --------------------------------------------------------------------------- scale


def test_parameter_counts_of_real_configs_match_published_figures():
    counts = {name: hf.count_from_config(*spec) for name, spec in hf.REAL_CONFIGS.items()}
    clip = next(v for k, v in counts.items() if k.startswith("CLIP"))
    llava = next(v for k, v in counts.items() if k.startswith("LLaVA"))
    assert clip["total"] == 151_277_313  # OpenAI CLIP ViT-B/32
    assert sum(v for k, v in clip.items() if k != "total") == clip["total"]
    assert llava["projector"] == 1024 * 4096 + 4096 + 4096 * 4096 + 4096  # two-layer MLP
    assert llava["total"] == pytest.approx(7.06e9, rel=2e-3)
    with pytest.raises(ValueError, match="kind"):
        hf.count_from_config("bert", {})


def test_count_parts_of_a_tiny_model(clip_parts):
    _, clip, _ = clip_parts
    parts = hf.count_parts(clip)
    assert parts["total"] == sum(p.numel() for p in clip.parameters())
    with pytest.raises(TypeError, match="model"):
        hf.count_parts(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------- the switch


def test_real_weights_switch_reads_argument_then_environment(monkeypatch):
    monkeypatch.delenv(hf.REAL_WEIGHTS_ENV, raising=False)
    assert hf.real_weights_wanted() is False  # off by default
    monkeypatch.setenv(hf.REAL_WEIGHTS_ENV, "1")
    assert hf.real_weights_wanted() is True
    assert hf.real_weights_wanted(False) is False
    monkeypatch.setenv(hf.REAL_WEIGHTS_ENV, "maybe")
    with pytest.raises(ValueError, match=hf.REAL_WEIGHTS_ENV):
        hf.real_weights_wanted()


def test_load_or_tiny_never_loads_when_off(monkeypatch):
    monkeypatch.delenv(hf.REAL_WEIGHTS_ENV, raising=False)

    def load(repo_id, **kwargs):
        raise AssertionError("must not be called when the switch is off")

    assert hf.load_or_tiny(load, hf.REAL_CLIP, lambda: "tiny model") == ("tiny model", "tiny")


def test_load_or_tiny_uses_the_cache_first(monkeypatch):
    calls = []

    def load(repo_id, local_files_only):
        calls.append(local_files_only)
        return "real model"

    assert hf.load_or_tiny(load, hf.REAL_CLIP, lambda: "tiny", real=True) == ("real model", "cache")
    assert calls == [True]


def test_load_or_tiny_respects_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "hub_reachable", lambda: pytest.fail("must not probe the network"))
    calls, said = [], []

    def load(repo_id, local_files_only):
        calls.append(local_files_only)
        raise OSError("not in the cache")

    got = hf.load_or_tiny(load, hf.REAL_CLIP, lambda: "tiny", real=True, say=said.append)
    assert got == ("tiny", "tiny") and calls == [True]
    assert len(said) == 1 and "HF_HUB_OFFLINE" in said[0]


def test_offline_fallback_is_one_line_and_fast_without_hf_hub_offline(tmp_path):
    """No network (the offline guard), HF_HUB_OFFLINE unset, an empty cache: the real CLIP is
    asked for and the tiny model comes back within seconds, with one line and no traceback."""
    script = (
        "import time\n"
        "from transformers import CLIPModel\n"
        "from mmcourse import hf\n"
        "start = time.perf_counter()\n"
        "thing, source = hf.load_or_tiny(CLIPModel.from_pretrained, hf.REAL_CLIP, "
        "lambda: 'TINY')\n"
        "print('RESULT', thing, source, round(time.perf_counter() - start, 2))\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "offline"), str(ROOT)]),
        HF_HOME=str(tmp_path / "hf-home"),  # an empty cache
        MMCOURSE_REAL_WEIGHTS="1",  # the learner's switch, on
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, done.stdout
    assert "not loaded" in lines[0] and "tiny model" in lines[0] and "\n" not in lines[0]
    _, thing, source, seconds = lines[1].split()
    assert (thing, source) == ("TINY", "tiny")
    assert float(seconds) < 5.0  # a plain from_pretrained retries for tens of seconds
    assert "Traceback" not in done.stderr


def test_only_hf_and_its_tests_import_transformers():
    """Other modules stay free of transformers (about 1 GB and seconds to import)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "mmcourse").rglob("*.py")
        if path.name != "hf.py"
        and any(
            line.lstrip().startswith(("import transformers", "from transformers"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []
    code = "import sys, mmcourse, mmcourse.exercises.nb11; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
