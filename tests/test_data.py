"""Tests of unlearn_jax.data.datasets: bundled data, carving, TFDS path."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from unlearn_jax import data


# --- bundled datasets ---------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k():
  return data.load_dataset("mnist5k")


@pytest.fixture(scope="module")
def digits():
  return data.load_dataset("digits")


def _all_images(ds):
  return [ds.train.x, ds.validation.x, ds.test.x]


def test_mnist5k_shapes_dtypes_and_class_counts(mnist5k):
  assert mnist5k.name == "mnist5k"
  assert mnist5k.num_classes == 10
  assert mnist5k.image_shape == (28, 28, 1)
  # 500 per class: 100 test, then 40 validation out of the remaining 400.
  for split, per_class in [(mnist5k.train, 360), (mnist5k.validation, 40),
                           (mnist5k.test, 100)]:
    assert split.x.dtype == np.float32 and split.y.dtype == np.int32
    assert split.x.shape == (len(split), 28, 28, 1)
    assert split.y.shape == (len(split),)
    np.testing.assert_array_equal(np.bincount(split.y, minlength=10),
                                  np.full(10, per_class))


def test_mnist5k_normalization(mnist5k):
  assert mnist5k.mean.shape == (1,) and mnist5k.std.shape == (1,)
  # Known MNIST statistics in [0, 1] units.
  assert 0.10 < mnist5k.mean[0] < 0.16 and 0.28 < mnist5k.std[0] < 0.34
  np.testing.assert_allclose(mnist5k.train.x.mean(), 0.0, atol=1e-4)
  np.testing.assert_allclose(mnist5k.train.x.std(), 1.0, atol=1e-4)
  # Un-normalized pixels are back in [0, 1] for every split.
  for x in _all_images(mnist5k):
    raw = x * mnist5k.std + mnist5k.mean
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
  assert np.isclose((mnist5k.train.x * mnist5k.std + mnist5k.mean).max(), 1.0)


def test_digits_shapes_and_ranges(digits):
  assert digits.num_classes == 10
  assert digits.image_shape == (8, 8, 1)
  assert len(digits.train) + len(digits.validation) + len(digits.test) == 1797
  np.testing.assert_allclose(digits.train.x.mean(axis=(0, 1, 2)), 0.0,
                             atol=1e-4)
  np.testing.assert_allclose(digits.train.x.std(axis=(0, 1, 2)), 1.0,
                             atol=1e-4)
  for x in _all_images(digits):
    raw = x * digits.std + digits.mean
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
  for split in (digits.train, digits.validation, digits.test):
    assert set(np.unique(split.y)) == set(range(10))


def _row_keys(x):
  return {row.tobytes() for row in x.reshape(x.shape[0], -1)}


@pytest.mark.parametrize("name, total", [("digits", 1797), ("mnist5k", 5000)])
def test_splits_are_disjoint_and_cover(name, total, mnist5k, digits):
  ds = {"digits": digits, "mnist5k": mnist5k}[name]
  assert len(ds.train) + len(ds.validation) + len(ds.test) == total
  # Compare the images themselves (raw data has very few exact duplicates).
  keys = [_row_keys(x) for x in _all_images(ds)]
  assert not keys[0] & keys[1] and not keys[0] & keys[2]
  assert not keys[1] & keys[2]
  assert sum(map(len, keys)) >= total - 5


def test_digits_stratified(digits):
  full = np.concatenate([digits.train.y, digits.validation.y, digits.test.y])
  full_counts = np.bincount(full)
  test_counts = np.bincount(digits.test.y, minlength=10)
  # Every class gives round(0.2 * n_c) examples to test.
  np.testing.assert_array_equal(test_counts, np.floor(0.2 * full_counts + 0.5))
  pool = full_counts - test_counts
  np.testing.assert_array_equal(np.bincount(digits.validation.y, minlength=10),
                                np.floor(0.1 * pool + 0.5))


def test_fractions_change_split_sizes():
  ds = data.load_dataset("digits", validation_fraction=0.0, test_fraction=0.5)
  assert len(ds.validation) == 0
  assert ds.validation.x.shape == (0, 8, 8, 1)
  assert abs(len(ds.test) - 1797 // 2) <= 10


def test_split_order_is_shuffled(mnist5k):
  # mnist_5k.csv is sorted by label; the carved splits must not be.
  assert not np.all(np.diff(mnist5k.train.y) >= 0)
  assert len(set(mnist5k.train.y[:100].tolist())) == 10


def test_deterministic_and_seed_dependent(digits):
  again = data.load_dataset("digits")
  for a, b in zip(_all_images(digits), _all_images(again)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(digits.train.y, again.train.y)
  other = data.load_dataset("digits", split_seed=1)
  assert _row_keys(other.test.x) != _row_keys(digits.test.x)


def test_max_train_examples(digits):
  small = data.load_dataset("digits", max_train_examples=100)
  assert len(small.train) == 100
  assert small.train.x.shape == (100, 8, 8, 1)
  # Same validation/test split; normalization from the kept train examples.
  assert len(small.validation) == len(digits.validation)
  np.testing.assert_allclose(small.train.x.mean(), 0.0, atol=1e-4)
  raw_small = small.train.x * small.std + small.mean
  raw_full = digits.train.x[:100] * digits.std + digits.mean
  np.testing.assert_allclose(raw_small, raw_full, atol=1e-5)
  # Larger than the train split: keep everything.
  assert len(data.load_dataset("digits", max_train_examples=10**6).train) == (
      len(digits.train))


@pytest.mark.parametrize("kwargs, match", [
    (dict(validation_fraction=1.0), r"validation_fraction must be in \[0, 1\)"),
    (dict(validation_fraction=-0.1), r"validation_fraction must be in \[0, 1\)"),
    (dict(test_fraction=0.0), r"test_fraction must be in \(0, 1\)"),
    (dict(test_fraction=1.0), r"test_fraction must be in \(0, 1\)"),
    (dict(max_train_examples=0), "max_train_examples must be a positive"),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.load_dataset("digits", **kwargs)


# --- TFDS ------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)),
                                         ("mnist", (28, 28, 1))])
def test_tfds_mock(name, shape):
  with tfds.testing.mock_data(num_examples=40):
    ds = data.load_dataset(name, validation_fraction=0.25)
  assert ds.name == name and ds.num_classes == 10
  assert ds.image_shape == shape
  assert len(ds.train) + len(ds.validation) == 40
  assert 5 <= len(ds.validation) <= 15
  assert len(ds.test) == 40
  for split in (ds.train, ds.validation, ds.test):
    assert split.x.dtype == np.float32 and split.x.shape[1:] == shape
    assert split.y.dtype == np.int32
    assert split.y.min() >= 0 and split.y.max() < 10
  np.testing.assert_allclose(ds.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  assert ds.mean.shape == (shape[-1],)
  # uint8 pixels were scaled to [0, 1] before normalization.
  raw = ds.test.x * ds.std + ds.mean
  assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_tfds_mock_deterministic():
  with tfds.testing.mock_data(num_examples=20):
    a = data.load_dataset("cifar10", split_seed=3)
    b = data.load_dataset("cifar10", split_seed=3)
  np.testing.assert_array_equal(a.train.x, b.train.x)
  np.testing.assert_array_equal(a.validation.y, b.validation.y)


def test_tfds_unprepared_raises_with_fix(tmp_path):
  with pytest.raises(data.DatasetNotPreparedError,
                     match=r"'cifar10' is not prepared .*tfds build cifar10"):
    data.load_dataset("cifar10", data_dir=str(tmp_path))


def test_unknown_name_raises(tmp_path):
  with pytest.raises(ValueError, match=r"Unknown dataset 'no_such_dataset_xyz'"
                     r".*mnist5k, digits.*any TFDS"):
    data.load_dataset("no_such_dataset_xyz", data_dir=str(tmp_path))


# A tiny real TFDS dataset written locally (array_record, no TensorFlow), to
# cover the non-mocked reading path: batched `__getitems__`, HxW images.
class UnlearnJaxTestTiny(tfds.core.GeneratorBasedBuilder):
  """12 train / 6 test 4x4 grayscale images, 3 classes."""

  VERSION = tfds.core.Version("1.0.0")
  SPLITS = {"train": 12, "test": 6}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(4, 4), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=3),
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n)
            for split, n in self.SPLITS.items()}

  def _generate_examples(self, split, n):
    offset = 100 if split == "test" else 0
    for i in range(n):
      pixel = offset + i
      yield f"{split}{i}", {"image": np.full((4, 4), pixel, np.uint8),
                            "label": pixel % 3}


class UnlearnJaxTestTinyTrainOnly(UnlearnJaxTestTiny):
  """Same, without a test split."""

  SPLITS = {"train": 12}


def _prepare(builder_cls, data_dir):
  builder_cls(data_dir=str(data_dir), file_format="array_record"
              ).download_and_prepare(
                  download_config=tfds.download.DownloadConfig(
                      try_download_gcs=False))


def test_tfds_local_prepared_dataset(tmp_path):
  _prepare(UnlearnJaxTestTiny, tmp_path)
  ds = data.load_dataset("unlearn_jax_test_tiny", data_dir=str(tmp_path),
                         validation_fraction=0.25)
  assert ds.num_classes == 3 and ds.image_shape == (4, 4, 1)
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (9, 3, 6)
  np.testing.assert_array_equal(np.bincount(ds.validation.y), [1, 1, 1])
  # Each image is constant; its pixel value determines its label.
  for split, offset in [(ds.train, 0), (ds.validation, 0), (ds.test, 100)]:
    pixels = np.rint((split.x[:, 0, 0, 0] * ds.std[0] + ds.mean[0]) * 255)
    np.testing.assert_array_equal(pixels.astype(int) % 3, split.y)
    assert np.all((pixels >= offset) & (pixels < offset + 12))


def test_tfds_missing_test_split(tmp_path):
  _prepare(UnlearnJaxTestTinyTrainOnly, tmp_path)
  with pytest.raises(ValueError, match=r"has no 'test' split \(it has: train\)"):
    data.load_dataset("unlearn_jax_test_tiny_train_only",
                      data_dir=str(tmp_path))


def test_mnist1d_generated_locally_with_its_own_test_split():
  """MNIST-1D from the mnist1d package's defaults: 4,000 train / 1,000 test sequences of length
  40 as 1x40x1 images; validation carved from train; the global RNGs are left as they were."""
  import random

  from mnist1d import data as m1d

  np.random.seed(123)
  random.seed(7)
  a = data.load_dataset("mnist1d", validation_fraction=0.1)
  assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)
  assert random.random() == random.Random(7).random()
  assert a.image_shape == (1, 40, 1) and a.num_classes == 10
  assert len(a.train) + len(a.validation) == 4000 and len(a.test) == 1000
  ref = m1d.make_dataset(m1d.get_dataset_args())
  # the test split is the package's own, in its order; normalised with the train split's stats
  raw_test = ref["x_test"].reshape(-1, 1, 40, 1).astype(np.float32)
  np.testing.assert_allclose(a.test.x, (raw_test - a.mean) / a.std, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(a.test.y, ref["y_test"])
  assert np.bincount(a.train.y, minlength=10).min() > 300  # stratified, ~400 per class
  b = data.load_dataset("mnist1d", validation_fraction=0.1)
  np.testing.assert_array_equal(a.train.x, b.train.x)
