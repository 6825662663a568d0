# The input functions of rules/download.smk (Snakemake's lint: functions apart from rules).

HUB_CACHE = plan.hub.cache_dir(config)


def hub_snapshot(wildcards):
    """The repository and commit a manifest stands for (motab.plan.hub)."""
    return plan.hub.manifest_ref(config, f"{HUB_CACHE}/manifests/{wildcards.snapshot}.json")


def hub_lock(wildcards):
    """(kind, repo, branch) of an unpinned hub entry's lock (motab.hublock)."""
    return plan.hub.lock_entry(config, f"{HUB_CACHE}/locks/{wildcards.lock}.json")


def download_targets():
    """The manifests of every pinned hub snapshot the selected studies read, and the locks of the
    unpinned ones."""
    return list(plan.hub.study_refs(config, config["select"]))
