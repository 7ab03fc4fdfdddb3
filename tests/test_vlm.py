"""Tests of mmcourse.vlm: the tiny vision-language model and its connectors."""

import copy
import math

import pytest
import torch
from torch import nn

from mmcourse import vlm

V, L = 30, 10  # vocabulary size, max text length of the small test models


def _images(b=3, size=32, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _ids(b=3, length=6, seed=1):
    return torch.randint(5, V, (b, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=vlm.CONNECTORS)
def model(request):
    torch.manual_seed(0)
    return vlm.TinyVLM(
        V, max_text_len=L, connector=request.param, d_model=32, vision_dim=32, n_heads=2
    ).eval()


# ----------------------------------------------------------------------------- patches
def test_patchify_shape_and_order():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    p = vlm.patchify(x, 2)
    assert p.shape == (2, 4, 12)
    # patch 1 is the top-right 2x2 block; its first 4 values are channel 0's pixels
    assert p[0, 1, :4].tolist() == x[0, 0, :2, 2:].flatten().tolist()
    assert p[1, 2, 4:8].tolist() == x[1, 1, 2:, :2].flatten().tolist()


def test_patch_embedding_is_a_linear_map_of_patches():
    torch.manual_seed(0)
    emb = vlm.PatchEmbedding(image_size=16, patch_size=4, in_channels=3, dim=8)
    x = _images(2, size=16)
    linear = emb.proj.weight.reshape(8, -1)  # (dim, C*P*P): conv kernel = linear weights
    expected = vlm.patchify(x, 4) @ linear.T + emb.proj.bias + emb.pos
    torch.testing.assert_close(emb(x), expected, rtol=1e-5, atol=1e-5)
    assert emb(x).shape == (2, 16, 8)


@pytest.mark.parametrize(
    "bad, error",
    [
        (torch.rand(3, 32, 32), ValueError),
        (torch.zeros(1, 3, 32, 32, dtype=torch.long), TypeError),
        ([[0.0]], TypeError),
    ],
)
def test_patchify_rejects_bad_images(bad, error):
    with pytest.raises(error, match="images"):
        vlm.patchify(bad, 4)


def test_patch_sizes_must_divide():
    with pytest.raises(ValueError, match="patch_size"):
        vlm.patchify(_images(1, size=30), 4)
    with pytest.raises(ValueError, match="patch_size"):
        vlm.PatchEmbedding(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="in_channels"):
        vlm.PatchEmbedding(in_channels=0)
    emb = vlm.PatchEmbedding(image_size=32, patch_size=8)
    with pytest.raises(ValueError, match="32x32"):
        emb(_images(1, size=16))
    with pytest.raises(ValueError, match="3 channels"):
        emb(torch.rand(1, 1, 32, 32))


# ----------------------------------------------------------------------------- attention
def test_causal_mask():
    m = vlm.causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert not m.diagonal().any() and m[0, 1] and not m[1, 0]
    with pytest.raises(ValueError, match="n must"):
        vlm.causal_mask(0)


def test_block_matches_a_hand_written_pre_norm_block():
    torch.manual_seed(0)
    block = vlm.Block(16, 4).eval()
    x = torch.randn(2, 5, 16)
    mask = vlm.causal_mask(5)
    h = block.ln1(x)
    a = block.attn
    q, k, v = (h @ a.in_proj_weight.T + a.in_proj_bias).chunk(3, dim=-1)
    split = lambda t: t.reshape(2, 5, 4, 4).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(4)
    weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
    attended = (weights @ split(v)).transpose(1, 2).reshape(2, 5, 16)
    y = x + a.out_proj(attended)
    expected = y + block.mlp(block.ln2(y))
    torch.testing.assert_close(block(x, attn_mask=mask), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        vlm.Block(10, 4)


def test_vit_encoder_shape():
    enc = vlm.ViTEncoder(image_size=32, patch_size=8, dim=16, depth=2, n_heads=2)
    assert enc(_images(2)).shape == (2, 16, 16)


# ----------------------------------------------------------------------------- connectors
def test_projectors():
    lin, mlp = vlm.make_projector("linear", 8, 16), vlm.make_projector("mlp", 8, 16)
    x = torch.randn(2, 5, 8)
    assert lin(x).shape == mlp(x).shape == (2, 5, 16)
    assert vlm.count_parameters(lin) == 8 * 16 + 16
    assert vlm.count_parameters(mlp) == (8 * 16 + 16) + (16 * 16 + 16)
    assert any(isinstance(m, nn.GELU) for m in mlp.modules())
    with pytest.raises(ValueError, match="kind"):
        vlm.make_projector("conv", 8, 16)
    with pytest.raises(ValueError, match="out_dim"):
        vlm.make_projector("mlp", 8, 0)


def test_gated_cross_attention_is_identity_at_init():
    torch.manual_seed(0)
    block = vlm.GatedCrossAttentionBlock(dim=16, kv_dim=8, n_heads=4)
    x, media = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    assert torch.equal(block(x, media), x)  # exactly, not approximately
    # opening the gates makes the text depend on the image
    with torch.no_grad():
        block.alpha_attn.fill_(0.5)
        block.alpha_dense.fill_(0.5)
    assert not torch.allclose(block(x, media), x)
    assert not torch.allclose(block(x, media), block(x, media + 1))


def test_gated_cross_attention_gates_get_gradient_at_init():
    torch.manual_seed(0)
    block = vlm.GatedCrossAttentionBlock(dim=16, kv_dim=8, n_heads=4)
    block(torch.randn(2, 5, 16), torch.randn(2, 7, 8)).pow(2).sum().backward()
    assert block.alpha_attn.grad.abs().item() > 0  # so training can open the gate


def test_gated_cross_attention_bad_input():
    block = vlm.GatedCrossAttentionBlock(dim=16, kv_dim=8, n_heads=4)
    with pytest.raises(ValueError, match="media"):
        block(torch.randn(2, 5, 16), torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match="batch size"):
        block(torch.randn(2, 5, 16), torch.randn(3, 7, 8))
    with pytest.raises(TypeError, match="x must"):
        block("text", torch.randn(2, 7, 8))


def test_qformer_shape_and_learnable_queries():
    torch.manual_seed(0)
    qf = vlm.QFormer(num_queries=3, dim=16, kv_dim=8, n_heads=4, depth=2)
    feats = torch.randn(2, 20, 8)
    out = qf(feats)
    assert out.shape == (2, 3, 16)  # a fixed number of visual tokens ...
    assert qf(torch.randn(2, 50, 8)).shape == (2, 3, 16)  # ... whatever the patch count
    assert isinstance(qf.queries, nn.Parameter) and qf.queries.requires_grad
    out.sum().backward()
    assert qf.queries.grad is not None and qf.queries.grad.abs().sum() > 0
    # the output depends on the image (the queries read it)
    assert not torch.allclose(qf(feats), qf(feats + 1.0))
    with pytest.raises(ValueError, match="image_features"):
        qf(torch.randn(2, 20, 16))
    with pytest.raises(ValueError, match="num_queries"):
        vlm.QFormer(num_queries=0)


# ----------------------------------------------------------------------------- the model
def test_tiny_vlm_shapes(model):
    logits = model(_images(), _ids())
    assert logits.shape == (3, 6, V)
    assert model.num_prefix == {"linear": 16, "mlp": 16, "qformer": 4, "xattn": 0}[model.connector]


def test_future_tokens_do_not_change_past_logits(model):
    images, ids = _images(), _ids()
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % V
    a, b = model(images, ids), model(images, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_logits_depend_on_the_image(model):
    ids = _ids()
    if model.connector == "xattn":  # the gates start closed: open them first
        for block in model.xattn:
            block.alpha_attn.data.fill_(1.0)
    a, b = model(_images(seed=0), ids), model(_images(seed=5), ids)
    assert not torch.allclose(a, b)


def test_tiny_vlm_bad_input():
    m = vlm.TinyVLM(V, max_text_len=L, d_model=32, vision_dim=32, n_heads=2)
    with pytest.raises(ValueError, match="connector"):
        vlm.TinyVLM(V, connector="perceiver")
    with pytest.raises(ValueError, match="max_text_len"):
        m(_images(), _ids(length=L + 1))
    with pytest.raises(ValueError, match=r"token ids in \[0, 30\)"):
        m(_images(), torch.full((3, 4), V))
    with pytest.raises(ValueError, match="LongTensor"):
        m(_images(), _ids().float())
    with pytest.raises(ValueError, match="batch size"):
        m(_images(2), _ids(3))
    with pytest.raises(ValueError, match="images"):
        m(torch.rand(3, 32, 32), _ids())


def test_next_token_loss_uses_only_targets():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    ids = torch.tensor([[1, 2, 3, 4], [1, 5, 6, 0]])
    mask = torch.tensor([[False, False, True, True], [False, True, True, False]])
    loss = vlm.next_token_loss(logits, ids, mask)
    picked = [(0, 1, 3), (0, 2, 4), (1, 0, 5), (1, 1, 6)]  # (row, logit position, target)
    expected = torch.stack([-logits[r, t].log_softmax(-1)[y] for r, t, y in picked]).mean()
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="ids must have shape"):
        vlm.next_token_loss(logits, ids[:, :3])
    with pytest.raises(ValueError, match="no target"):
        vlm.next_token_loss(logits, ids, torch.zeros_like(mask))


# ----------------------------------------------------------------------------- generation
def test_sample_next_token():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    assert vlm.sample_next_token(logits, 0).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    many = vlm.sample_next_token(logits[:1].expand(4000, -1), 1.0, g)
    freq = (many == 1).float().mean().item()
    assert abs(freq - torch.softmax(logits[0], 0)[1].item()) < 0.03
    hot = vlm.sample_next_token(logits[:1].expand(3000, -1), 100.0, g)
    assert abs((hot == 1).float().mean().item() - 1 / 3) < 0.04  # nearly uniform
    for bad in (-1.0, float("nan"), "hot"):
        with pytest.raises(ValueError, match="temperature"):
            vlm.sample_next_token(logits, bad)


class _Scripted(vlm.TinyVLM):
    """A TinyVLM whose next token is fixed by a script: token t+1 = script[t] per row."""

    def __init__(self, script):
        super().__init__(V, max_text_len=L, d_model=8, vision_dim=8, n_heads=1)
        self.script = torch.tensor(script)

    def forward_features(self, features, ids):
        n = ids.shape[1]
        nxt = self.script[:, n - 1] if n - 1 < self.script.shape[1] else self.script[:, -1]
        return nn.functional.one_hot(nxt, V).float()[:, None].expand(-1, n, -1) * 10


def test_generate_stops_at_eos_and_pads():
    eos, pad = 4, 0
    model = _Scripted([[7, 4, 9, 9, 9, 9], [7, 8, 9, 4, 9, 9]])
    out = vlm.generate(
        model, _images(2), torch.tensor([2]), max_new_tokens=6, eos_id=eos, pad_id=pad
    )
    assert out.tolist() == [[2, 7, 4, pad, pad], [2, 7, 8, 9, 4]]  # stops once all are done


def test_generate_respects_max_new_tokens():
    model = _Scripted([[7] * L, [8] * L])  # never says EOS
    out = vlm.generate(
        model, _images(2), torch.tensor([[2, 3], [2, 3]]), max_new_tokens=3, eos_id=4
    )
    assert out.shape == (2, 5)
    assert vlm.generate(model, _images(2), torch.tensor([2]), 0, eos_id=4).shape == (2, 1)


def test_generate_with_a_real_model_and_temperature(model):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    prompt = torch.tensor([2, 5])
    a = vlm.generate(model, _images(), prompt, 5, eos_id=4, temperature=1.0, generator=g1)
    b = vlm.generate(model, _images(), prompt, 5, eos_id=4, temperature=1.0, generator=g2)
    assert torch.equal(a, b)  # the same generator seed gives the same sample
    assert a.shape[0] == 3 and 3 <= a.shape[1] <= 7 and torch.equal(a[:, :2], prompt.expand(3, 2))
    greedy = vlm.generate(model, _images(), prompt, 5, eos_id=4)
    first = model(_images(), prompt.expand(3, 2))[:, -1].argmax(-1)
    assert torch.equal(greedy[:, 2], first)


def test_generate_bad_input(model):
    with pytest.raises(ValueError, match="exceeds"):
        vlm.generate(model, _images(), torch.tensor([2, 5]), L, eos_id=4)
    with pytest.raises(ValueError, match="eos_id"):
        vlm.generate(model, _images(), torch.tensor([2]), 3, eos_id=V)
    with pytest.raises(ValueError, match="max_new_tokens"):
        vlm.generate(model, _images(), torch.tensor([2]), -1, eos_id=4)
    with pytest.raises(ValueError, match="rows"):
        vlm.generate(model, _images(), torch.tensor([[2], [2]]), 3, eos_id=4)
    with pytest.raises(TypeError, match="TinyVLM"):
        vlm.generate(nn.Linear(2, 2), _images(), torch.tensor([2]), 3, eos_id=4)


# ----------------------------------------------------------------------------- training
def test_fit_vlm_learns_an_image_dependent_token():
    """Two image kinds (dark / bright); the answer token is 5 or 6 depending on it."""
    torch.manual_seed(0)
    bright = torch.arange(64) % 2 == 0
    images = torch.where(
        bright[:, None, None, None],
        torch.full((64, 3, 32, 32), 0.9),
        torch.full((64, 3, 32, 32), 0.1),
    )
    images = images + 0.05 * torch.randn_like(images)
    ids = torch.stack([torch.tensor([2, 7, 5 if b else 6, 4]) for b in bright])
    mask = torch.tensor([False, False, True, True]).expand(64, 4)
    model = vlm.TinyVLM(V, max_text_len=4, connector="mlp", d_model=32, vision_dim=32, n_heads=2)
    history = vlm.fit_vlm(model, images, ids, mask, epochs=15, batch_size=16, lr=3e-3)
    assert history[-1] < 0.1 * history[0]
    out = vlm.generate(model, images, torch.tensor([2, 7]), 2, eos_id=4)
    assert torch.equal(out[:, 2], ids[:, 2])
    with pytest.raises(ValueError, match="same number of rows"):
        vlm.fit_vlm(model, images[:3], ids, mask)
    with pytest.raises(ValueError, match="epochs"):
        vlm.fit_vlm(model, images, ids, mask, epochs=0)


# ----------------------------------------------------------------------------- counting
def test_count_parameters_and_flops():
    lin = nn.Linear(10, 4)
    assert vlm.count_parameters(lin) == 44
    lin.bias.requires_grad_(False)
    assert vlm.count_parameters(lin, trainable_only=True) == 40
    assert vlm.count_flops(lin, torch.randn(3, 10)) == 2 * 3 * 10 * 4
    assert vlm.estimate_forward_flops(1e6, 10) == 2e7
    with pytest.raises(ValueError, match="n_tokens"):
        vlm.estimate_forward_flops(1e6, 0)
    with pytest.raises(TypeError, match="module"):
        vlm.count_parameters("model")


def test_vit_image_params_matches_a_real_vit_and_the_published_count():
    # CLIP ViT-B/32's image tower: 87.85 M parameters in open_clip's profile table
    assert vlm.vit_image_params(768, 12, 32, 224, 512) == 87_849_216
    assert vlm.vit_image_params(1024, 24, 14, 336, 768) == 304_293_888  # ViT-L/14-336
    # and the formula agrees with an explicit small module of the same layout
    d, layers, patch, size, out = 16, 2, 8, 32, 12
    tower = nn.ModuleDict(
        {
            "conv": nn.Conv2d(3, d, patch, patch, bias=False),
            "ln_pre": nn.LayerNorm(d),
            "ln_post": nn.LayerNorm(d),
            "blocks": nn.ModuleList(nn.TransformerEncoderLayer(d, 2, 4 * d) for _ in range(layers)),
        }
    )
    extra = d + ((size // patch) ** 2 + 1) * d + d * out  # class token, positions, projection
    assert vlm.vit_image_params(d, layers, patch, size, out) == (
        vlm.count_parameters(tower) + extra
    )
    with pytest.raises(ValueError, match="patch_size"):
        vlm.vit_image_params(768, 12, 30, 224, 512)


def test_published_figures_have_sources():
    table = vlm.published_figures()
    assert set(table.columns) == {"model", "component", "figure", "value", "source"}
    assert table["source"].str.len().min() > 10
    assert {"CLIP ViT-B/32", "LLaVA-1.5-7B"} <= set(table["model"])


# ----------------------------------------------------------------------------- captions and VQA
def _vocab():
    return vlm.build_vocab(
        ["a ginger pet sitting on a sofa", *vlm.QUESTIONS.values(), vlm.CAPTION_PROMPT]
    )


def test_vocab_and_pair_encoding_follow_the_chat_template():
    vocab = _vocab()
    assert vocab.tokens[:4] == ["<pad>", "<unk>", *vlm.SPECIALS]
    assert vlm.IMAGE_TOKEN not in vocab  # its slot is filled with visual tokens
    text = vlm.chat_prompt("what colour is the pet?")
    assert text.startswith(vlm.IMAGE_TOKEN) and "USER: what colour" in text
    assert text.endswith("ASSISTANT:")
    ids, mask = vlm.encode_pairs(vocab, ["what colour is the pet?"], ["ginger"], 12)
    row = ids[0].tolist()
    words = ["<bos>", "user", "what", "colour", "is", "the", "pet", "assistant", "ginger", "<eos>"]
    assert row[:10] == [vocab.index[w] for w in words] and row[10:] == [0, 0]
    assert mask[0].nonzero().flatten().tolist() == [8, 9]  # the reply and <eos> only
    assert vlm.decode_answers(vocab, ids, 8) == ["ginger"]
    assert vlm.encode_prompt(vocab, "where is the pet?").tolist()[-1] == vocab.index["assistant"]
    with pytest.raises(ValueError, match="max_len"):
        vlm.encode_pairs(vocab, ["what colour is the pet?"], ["ginger"], 9)
    with pytest.raises(ValueError, match="equal length"):
        vlm.encode_pairs(vocab, ["a", "b"], ["c"], 8)
    with pytest.raises(ValueError, match="prompt"):
        vlm.chat_prompt("  ")
    from mmcourse.text import Vocab

    with pytest.raises(ValueError, match="build_vocab"):
        vlm.encode_prompt(Vocab.build(["a b"]), "a")


def test_attribute_accuracy_and_mentions():
    assert vlm.mentioned_value("a ginger pet, black spots", ["black", "ginger"]) == "ginger"
    assert vlm.mentioned_value("a pet", ["black"]) is None
    texts = ["a ginger pet on a sofa", "a black cat", "a pet"]
    assert vlm.attribute_accuracy(
        texts, ["ginger", "white", "grey"], ["ginger", "white", "grey", "black"]
    ) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="equal length"):
        vlm.attribute_accuracy(texts, ["ginger"])


def test_nearest_neighbours():
    train = torch.tensor([[0.0, 0.0], [10.0, 10.0], [5.0, 0.0]])
    query = torch.tensor([[9.0, 9.0], [4.0, 1.0], [0.1, 0.0]])
    assert vlm.nearest_neighbours(train, query, chunk=2).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="same size"):
        vlm.nearest_neighbours(train, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="train"):
        vlm.nearest_neighbours([[0.0]], query)


# ----------------------------------------------------------------------------- exercises
def test_exercises_accept_solutions_and_reject_plausible_mistakes():
    from mmcourse.exercises import get

    for key in ("07.patchify", "07.vit_params", "07.temperature", "07.hallucination"):
        ex = get(key)
        ex.check(ex.solution())  # does not raise

    def reshape_only(images, p):  # right shape, pixels of several patches mixed
        b, c, h, w = images.shape
        return images.reshape(b, (h // p) * (w // p), c * p * p)

    def blocks_only(width, layers, patch_size, image_size, embed_dim):
        return 12 * width * width * layers  # the rule of thumb, not the exact count

    def multiplies(logits, temperature, generator=None):
        if temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits * temperature, -1)  # should divide
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    def any_behaviour(captions, species):  # counts the own species' behaviour too
        phrases = vlm.attribute_phrases()["species"]
        said = [any(p in c for ps in phrases.values() for p in ps) for c in captions]
        return sum(said) / len(captions)

    def counts(captions, species):  # a count, not a share
        return get("07.hallucination").solution()(captions, species) * len(captions)

    for key, wrong in (
        ("07.patchify", reshape_only),
        ("07.vit_params", blocks_only),
        ("07.temperature", multiplies),
        ("07.hallucination", any_behaviour),
        ("07.hallucination", counts),
    ):
        with pytest.raises(AssertionError):
            get(key).check(wrong)


# ----------------------------------------------------------------------------- LLaVA's recipe
@pytest.fixture(scope="module")
def clip():
    from mmcourse.contrastive import make_tiny_clip

    torch.manual_seed(0)
    model = make_tiny_clip(20)
    model.train()
    model(_images(8), torch.ones(8, 3, dtype=torch.long), torch.ones(8, 3, dtype=torch.bool))
    return model  # BatchNorm statistics moved away from their initial values


def test_clip_grid_tower_reads_the_last_feature_map_frozen(clip):
    tower = vlm.CLIPGridTower(clip)
    assert (tower.num_patches, tower.dim) == (16, 64)
    assert not any(p.requires_grad for p in tower.parameters())
    tower.train()  # a frozen tower stays in eval mode: CLIP's BatchNorm statistics are kept
    assert not tower.training and not clip.image_encoder[1].blocks[0][1].training
    images = _images(3)
    out = tower(images)
    pool, cnn = clip.image_encoder
    with torch.no_grad():
        grid = cnn.feature_maps(pool(images))[-1]  # (3, 64, 4, 4)
    want = torch.nn.functional.layer_norm(grid.flatten(2).transpose(1, 2), (64,))
    torch.testing.assert_close(out, want)
    assert out[0, 5].mean().abs() < 1e-5 and (out[0, 5].var(unbiased=False) - 1).abs() < 0.05
    coarse = vlm.CLIPGridTower(clip, grid_size=2)
    assert coarse.num_patches == 4 and coarse(images).shape == (3, 4, 64)
    with pytest.raises(TypeError, match="TinyCLIP"):
        vlm.CLIPGridTower(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="grid_size"):
        vlm.CLIPGridTower(clip, grid_size=0)


def test_tiny_lm_is_causal_and_reads_a_prefix():
    torch.manual_seed(0)
    lm = vlm.TinyLM(V, max_len=L, d_model=16, depth=2, n_heads=2).eval()
    ids, changed = _ids(), _ids().clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % V
    torch.testing.assert_close(lm(ids)[:, :3], lm(changed)[:, :3])
    prefix = torch.randn(3, 2, 16)
    out = lm(ids, prefix=prefix)
    assert out.shape == (3, 6, V)  # logits over the text only
    assert not torch.allclose(out, lm(ids, prefix=prefix + 1))  # the text reads the prefix
    with pytest.raises(ValueError, match="prefix"):
        lm(ids, prefix=torch.randn(3, 2, 8))
    with pytest.raises(ValueError, match="cross and media"):
        lm(ids, media=prefix)


def test_tiny_vlm_on_a_pretrained_tower_and_lm(clip):
    tower = vlm.CLIPGridTower(clip, grid_size=2)
    lm = vlm.TinyLM(V, max_len=L, d_model=16, depth=2, n_heads=2)
    for connector, tokens in (("mlp", 4), ("qformer", 2), ("xattn", 0)):
        m = vlm.TinyVLM(V, connector=connector, vision=tower, lm=lm, n_heads=2, num_queries=2)
        assert m.lm is lm and m.num_prefix == tokens and m.max_text_len == L
        images, ids = _images(), _ids()
        torch.testing.assert_close(m(images, ids), m.forward_features(tower(images), ids))
    with pytest.raises(ValueError, match="vocab_size"):
        vlm.TinyVLM(V + 1, vision=tower, lm=lm)
    with pytest.raises(TypeError, match="vision"):
        vlm.TinyVLM(V, vision=nn.Linear(2, 2))


def test_set_stage_trains_what_llava_trains(clip):
    tower = vlm.CLIPGridTower(clip, grid_size=2)
    lm = vlm.TinyLM(V, max_len=L, d_model=16, depth=1, n_heads=2)
    m = vlm.TinyVLM(V, connector="mlp", vision=tower, lm=lm, n_heads=2)
    connector = vlm.count_parameters(m.projector) + m.visual_pos.numel()
    assert vlm.set_stage(m, "align") == connector
    assert vlm.set_stage(m, "instruct") == connector + vlm.count_parameters(lm)
    assert vlm.set_stage(m, "all") == vlm.count_parameters(m)  # the tower stays frozen
    assert not any(p.requires_grad for p in tower.parameters())
    vlm.set_stage(m, "align")
    vlm.next_token_loss(m(_images(), _ids()), _ids()).backward()
    assert all(p.grad is None for p in lm.parameters())
    assert m.projector[0].weight.grad is not None
    with pytest.raises(ValueError, match="stage"):
        vlm.set_stage(m, "pretrain")


def test_fit_vlm_rows_index_the_pictures_and_only_the_stage_trains(clip):
    tower = vlm.CLIPGridTower(clip, grid_size=2)
    images = _images(4)
    ids = torch.tensor([[2, 7, 5, 4], [2, 7, 6, 4], [2, 8, 5, 4], [2, 8, 6, 4], [2, 7, 6, 4]])
    rows = torch.tensor([0, 1, 2, 3, 1])
    mask = torch.tensor([False, False, True, True]).expand(5, 4)

    def trained(images, rows):
        torch.manual_seed(0)
        lm = vlm.TinyLM(V, max_len=4, d_model=16, depth=1, n_heads=2)
        m = vlm.TinyVLM(V, connector="mlp", vision=tower, lm=lm, n_heads=2)
        vlm.set_stage(m, "align")
        before = copy.deepcopy(lm.state_dict())
        history = vlm.fit_vlm(m, images, ids, mask, epochs=3, batch_size=2, rows=rows)
        assert all(torch.equal(before[k], v) for k, v in lm.state_dict().items())
        return m, history

    a, history_a = trained(images, rows)
    b, history_b = trained(images[rows], None)  # the same rows, pictures repeated
    assert history_a == pytest.approx(history_b, rel=1e-5)
    torch.testing.assert_close(a.projector[0].weight, b.projector[0].weight)
    with pytest.raises(ValueError, match="rows must index"):
        vlm.fit_vlm(a, images, ids, mask, rows=torch.tensor([0, 1, 2, 3, 9]))
    with pytest.raises(ValueError, match="nothing to train"):
        for p in a.parameters():
            p.requires_grad_(False)
        vlm.fit_vlm(a, images, ids, mask, rows=rows)


def test_fit_lm_learns_a_text():
    torch.manual_seed(0)
    lm = vlm.TinyLM(V, max_len=6, d_model=16, depth=1, n_heads=2)
    ids = torch.tensor([[2, 9, 10, 11, 12, 3]]).expand(32, -1)
    history = vlm.fit_lm(lm, ids, epochs=20, batch_size=8, lr=1e-2)
    assert history[-1] < 0.1 * history[0]
    assert lm(ids[:1, :3])[0, -1].argmax().item() == 11
    with pytest.raises(TypeError, match="TinyLM"):
        vlm.fit_lm(nn.Linear(2, 2), ids)


# ----------------------------------------------------------------------------- hallucination
def test_hallucinated_attributes_by_hand():
    cat = {"fur": "ginger", "pose": "sitting", "background": "sofa", "species": "cat"}
    assert vlm.hallucinated("a ginger pet sitting on a sofa, purring", cat) == []
    assert vlm.hallucinated("a ginger pet sitting on a sofa, barking", cat) == [("species", "dog")]
    assert vlm.hallucinated("a black pet standing on the grass", cat) == [
        ("fur", "black"),
        ("pose", "standing"),
        ("background", "grass"),
    ]
    assert vlm.hallucinated("a pet", cat) == []  # an omission is not a hallucination
    assert vlm.hallucinated("a pet fetching a stick", cat) == [("species", "dog")]
    with pytest.raises(ValueError, match="truth lacks"):
        vlm.hallucinated("a pet", {"fur": "ginger"})


def test_hallucination_rate_counts_captions_and_matches_the_data_card():
    import pandas as pd

    attributes = pd.DataFrame(
        {
            "fur": ["ginger"] * 4,
            "pose": ["lying"] * 4,
            "background": ["snow"] * 4,
            "species": ["cat", "cat", "dog", "dog"],
        }
    )
    captions = ["a ginger pet, barking", "a grey pet, barking", "a ginger pet, barking", "a pet"]
    rates = vlm.hallucination_rate(captions, attributes)
    assert rates == {"fur": 0.25, "pose": 0.0, "background": 0.0, "species": 0.5, "any": 0.5}
    # the real captions: only the misleading behaviour cues contradict the picture
    from mmcourse.datasets import load_cats_dogs

    data = load_cats_dogs()
    rates = vlm.hallucination_rate(data.captions, data.attributes)
    assert rates["species"] == pytest.approx(float((data.attributes["cue"] == "misleading").mean()))
    assert rates["fur"] == rates["pose"] == rates["background"] == 0.0
    with pytest.raises(ValueError, match="equal length"):
        vlm.hallucination_rate(captions[:2], attributes)
    with pytest.raises(ValueError, match="column"):
        vlm.hallucination_rate(captions, attributes.drop(columns="pose"))


# ----------------------------------------------------------------------------- the entry point
def test_chat_rows_and_build_tiny_llava_on_a_small_set():
    import numpy as np

    from mmcourse.datasets import load_cats_dogs

    small = load_cats_dogs().subset(np.arange(0, 2000, 5))  # 400 pictures, 240 for training
    train = small.subset("train")
    vocab = vlm.course_vocab(small)
    n = len(train)
    for kind, per_picture in (("captions", 1), ("instruct", 6), ("text", 2)):
        ids, mask, rows = vlm.chat_rows(vocab, train, kind)
        assert ids.shape[0] == mask.shape[0] == rows.shape[0] == per_picture * n
        assert torch.equal(rows.unique(), torch.arange(n))
    ids, mask, rows = vlm.chat_rows(vocab, train, "instruct")
    replies = vlm.decode_answers(vocab, ids * mask, 0)  # the targets only
    species = [r for r, i in zip(replies, rows.tolist(), strict=True) if r in ("cat", "dog")]
    assert len(species) == 2 * n  # asked twice, in two phrasings
    with pytest.raises(ValueError, match="kind"):
        vlm.chat_rows(vocab, train, "dialogue")

    out = vlm.build_tiny_llava(data=small, stages=("align",))
    assert set(out.history) == {"tower", "lm", "align"}
    assert out.history["align"][-1] < out.history["align"][0]
    assert not any(p.requires_grad for p in out.model.lm.parameters())  # stage 1: LM frozen
    test_images = torch.as_tensor(small.subset("test").images[:3])
    replies = out.ask(test_images, vlm.CAPTION_PROMPT)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    with pytest.raises(ValueError, match="stages"):
        vlm.build_tiny_llava(data=small, stages="align")
