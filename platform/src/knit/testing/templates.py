"""This knit repository as it is in the working tree, committed in a throwaway clone: copier
renders committed templates only, and tests must see the templates (and the knit a generated
app installs) being edited."""

from __future__ import annotations

import shutil
from pathlib import Path

from knit.new import commit_all, git, template_repository


def snapshot(into: Path) -> Path:
    """A clone of this knit's repository in `into`/knit with the working tree's files (those git
    does not ignore) committed on top. Returns the clone, for `knit new --from`."""
    repository = template_repository()
    clone = into / "knit"
    git(into, "clone", "--quiet", "--no-hardlinks", str(repository), str(clone))
    listed = git(repository, "ls-files", "-z", "--cached", "--others", "--exclude-standard") or ""
    for name in filter(None, listed.split("\0")):
        source, target = repository / name, clone / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        else:  # deleted in the working tree
            target.unlink(missing_ok=True)
    commit_all(clone, "the working tree")
    return clone
