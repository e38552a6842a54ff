"""Text data: embedded sentence polarity, GLUE SST-2 files, stratified splits, tokenizing, split files."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from simqnas.data import load_split, save_split
from simqnas.data.splits import stratified_splits
from simqnas.data.text import (
    encode_split,
    load_glue_sst2,
    load_sentence_polarity,
    tokenize,
)


@pytest.fixture(scope="module")
def polarity() -> pd.DataFrame:
    return load_sentence_polarity()


def test_sentence_polarity_has_the_non_neutral_sentences(polarity):
    assert len(polarity) == 10_568
    assert list(polarity.columns) == ["text", "label"]
    assert set(polarity["label"]) == {0, 1}
    assert polarity["label"].sum() == 5_242
    assert polarity["text"].str.len().min() > 0


def test_splits_are_disjoint_stratified_and_deterministic(polarity):
    sizes = {"train": 6000, "validation": 1000, "calibration": 64, "test": "all"}
    splits = stratified_splits(polarity, sizes, seed=3)
    assert list(splits) == list(sizes)
    assert [len(s) for s in splits.values()] == [6000, 1000, 64, len(polarity) - 7064]
    indices = [set(s.index) for s in splits.values()]
    assert sum(len(i) for i in indices) == len(set().union(*indices)) == len(polarity)
    share = polarity["label"].mean()
    for split in splits.values():
        assert abs(split["label"].sum() - share * len(split)) <= 1
    again = stratified_splits(polarity, sizes, seed=3)
    assert all(again[k].index.equals(splits[k].index) for k in sizes)
    other = stratified_splits(polarity, sizes, seed=4)
    assert not other["train"].index.equals(splits["train"].index)


def test_rest_split_takes_what_fixed_sizes_leave_in_any_order(polarity):
    splits = stratified_splits(polarity, {"train": None, "validation": 500}, seed=0)
    assert len(splits["validation"]) == 500 and len(splits["train"]) == len(polarity) - 500


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (
            {"train": 10_000, "validation": 1000},
            "splits: validation: 1000 rows requested but only 568 of 10568",
        ),
        ({"train": 20_000}, "splits: train: 20000 rows requested but only 10568 of 10568"),
        ({"train": "all", "test": None}, "only one split can take the rest, got train, test"),
        ({"train": 0}, "splits: train: 0 is not a positive row count"),
    ],
)
def test_split_errors_name_the_key_and_numbers(polarity, sizes, message):
    with pytest.raises(ValueError, match=message):
        stratified_splits(polarity, sizes, seed=0)


def test_tokenize_pads_and_truncates_to_max_length():
    tensors = tokenize(["a fine film .", "word " * 100], max_length=16)
    assert set(tensors) == {"input_ids", "attention_mask"}
    assert tensors["input_ids"].shape == (2, 16) and tensors["input_ids"].dtype == torch.int64
    assert tensors["attention_mask"].sum(dim=1).tolist() == [6, 16]
    assert tensors["input_ids"][0, 0] == 101 and tensors["input_ids"][0, 5] == 102  # [CLS] ... [SEP]
    assert (tensors["input_ids"][0, 6:] == 0).all()


def test_encoded_split_round_trips_through_a_file(tmp_path, polarity):
    frame = polarity.iloc[:10]
    tensors = encode_split(frame, max_length=12)
    save_split(tmp_path / "train.safetensors", tensors)
    loaded = load_split(tmp_path / "train.safetensors", required=("input_ids", "attention_mask"))
    assert loaded["labels"].tolist() == frame["label"].tolist()
    torch.testing.assert_close(loaded["input_ids"], tensors["input_ids"])


def test_split_files_are_validated_naming_file_and_tensor(tmp_path):
    with pytest.raises(ValueError, match="missing tensor 'labels'"):
        save_split(tmp_path / "x.safetensors", {"input_ids": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="tensor 'input_ids' has 3 rows, 'labels' has 2"):
        save_split(tmp_path / "x.safetensors", {"input_ids": torch.zeros(3, 3), "labels": torch.zeros(2)})
    path = tmp_path / "split.safetensors"
    save_split(path, {"labels": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"split\.safetensors: missing tensor 'input_ids' \(has: labels\)"):
        load_split(path, required=("input_ids",))
    with pytest.raises(FileNotFoundError, match=r"nothing\.safetensors: split file not found"):
        load_split(tmp_path / "nothing.safetensors")
    (tmp_path / "bad.safetensors").write_text("garbage")
    with pytest.raises(ValueError, match=r"bad\.safetensors: not a readable safetensors file"):
        load_split(tmp_path / "bad.safetensors")


def test_glue_sst2_folder_pools_labelled_files(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\nit \'s a "great" film \t1\ndull , dull \t0\n')
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nlovely\t1\n")
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tunlabelled\n")
    frame = load_glue_sst2(tmp_path)
    assert frame["text"].tolist() == ['it \'s a "great" film ', "dull , dull ", "lovely"]
    assert frame["label"].tolist() == [1, 0, 1]
    assert len(load_glue_sst2(tmp_path / "dev.tsv")) == 1


def test_glue_sst2_errors_name_the_file(tmp_path):
    (tmp_path / "test.tsv").write_text("index\tsentence\n0\tunlabelled\n")
    with pytest.raises(ValueError, match=r"test\.tsv: missing column 'label'"):
        load_glue_sst2(tmp_path / "test.tsv")
    with pytest.raises(FileNotFoundError, match=r"no train\.tsv/dev\.tsv"):
        load_glue_sst2(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"absent: GLUE SST-2 file or folder not found"):
        load_glue_sst2(tmp_path / "absent")


def test_the_held_out_test_split_leaves_the_other_splits_as_they_were(polarity):
    """The default's test split (drawn last) is disjoint from the rest and changes none of them."""
    sizes = {"train": 8000, "validation": 500, "calibration": 512}
    before = stratified_splits(polarity, sizes, seed=0)
    after = stratified_splits(polarity, {**sizes, "test": 1500}, seed=0)
    for name in sizes:
        assert after[name].index.equals(before[name].index)
    seen = set().union(*(set(after[name].index) for name in sizes))
    assert len(after["test"]) == 1500 and not seen & set(after["test"].index)
