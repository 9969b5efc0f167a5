"""Meta-database building: the NB201 and OFA builders, their command lines, the Ray pool that runs
their jobs, the results journal that makes a build resumable, and ImageNet folder sampling."""
