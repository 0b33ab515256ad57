"""Full mode's data: CelebA faces against Imagenette non-faces at 64×64, tested on balanced groups.

The paper tests on PPB, which is available only on request. We evaluate instead on CelebA's
official test split, drawing the same number of faces from each of the groups
{female, male} × {not pale, pale} given by CelebA's ``Male`` and ``Pale_Skin`` attributes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rfy.debiasing.config import Config
from rfy.debiasing.data import BiasedData
from rfy.debiasing.face_files import GROUP_NAMES, balanced_group_indices, load_celeba_faces, load_non_faces
from rfy.errors import ChecksumError, DatasetNotAvailableError


def rarest_groups(groups: torch.Tensor, count: int = 2) -> tuple[int, ...]:
    """The ``count`` groups with the fewest training faces."""
    sizes = torch.bincount(groups, minlength=len(GROUP_NAMES))
    return tuple(sorted(sizes.argsort()[:count].tolist()))


def _load_all(*loaders: Callable[[], Any]) -> list[Any]:
    """Call every loader; if some datasets are missing or corrupt, one error names all of them.

    Offline, a reader learns in one go that both CelebA and Imagenette are needed (and where to put
    them), instead of fixing one and then hearing about the next.
    """
    results, problems = [], []
    for loader in loaders:
        try:
            results.append(loader())
        except (DatasetNotAvailableError, ChecksumError) as error:
            if str(error) not in problems:
                problems.append(str(error))
            results.append(None)
    if problems:
        raise DatasetNotAvailableError("Full-mode debiasing needs CelebA and Imagenette.\n" + "\n".join(problems))
    return results


def load_face_detection_data(config: Config) -> BiasedData:
    """Training faces and non-faces (``train_per_class`` each, 0 = all) and a balanced test set.

    Images stay uint8: 200k training images take 2.4 GB on the GPU instead of 9.8 GB as float32.
    """
    limit = config.train_per_class or None
    (faces, groups, names), non_faces, (test_faces, test_groups, _) = _load_all(
        lambda: load_celeba_faces("train", size=64, limit=limit),
        lambda: load_non_faces("train", size=64, limit=limit),
        lambda: load_celeba_faces("test", size=64))
    chosen = balanced_group_indices(test_groups, config.test_per_group, config.seed)
    test_non_faces = load_non_faces("val", size=64, limit=len(chosen) // len(names))

    X_train = torch.cat([faces, non_faces])
    y_train = torch.cat([torch.ones(len(faces)), torch.zeros(len(non_faces))]).long()
    group_train = torch.cat([groups, torch.full((len(non_faces),), -1)])
    X_test = torch.cat([test_faces[chosen], test_non_faces])
    y_test = torch.cat([torch.ones(len(chosen)), torch.zeros(len(test_non_faces))]).long()
    group_test = torch.cat([test_groups[chosen], torch.full((len(test_non_faces),), -1)])
    return BiasedData(X_train, y_train, group_train, X_test, y_test, group_test,
                      group_names=tuple(names), rare_groups=rarest_groups(groups))
