# Evaluate: zero-shot phase recognition of every (variant, seed) on every target dataset, and the
# reference points (untrained model, linear probe on frozen embeddings), through the same metrics.
#
# One job per model (STUDY.evaluation_jobs): it loads the model once, embeds each dataset's frames
# once and writes every (dataset, space, prompts) cell the study asks of that model, each in its own
# folder with its own MLflow run. A job per cell would spend ~90% of its time starting Python, torch
# and MLflow. Rule names: evaluate_<variant>_seed<N>, evaluate_untrained_seed<N>, evaluate_linear_probe_seed<N>.

for _job in STUDY.evaluation_jobs():

    rule:
        name:
            _job.name
        input:
            weights=evaluate_weights(_job),
            frames=[f"{FRAMES}/{d}.json" for d in _job.datasets],
            data=acquired(*_job.datasets),  # labels and splits, read beside the cached frames
        output:
            metrics=list(_job.metrics),
            predictions=evaluate_predictions(_job),
        params:
            file=config_file,
            # a function: the --out template's {dataset} is for hecvl, not a wildcard
            arguments=lambda wc, job=_job: evaluate_arguments(job),
            eval=P.eval.to_dict(),
            # labels and splits are read beside the cached frames: the datasets by content
            data=lambda wc, job=_job: DATA.datasets(job.datasets),
        log:
            f"{LOGS}/evaluate/{_job.model}/seed{_job.seed}.log",
        benchmark:
            f"{LOGS}/benchmarks/evaluate/{_job.model}/seed{_job.seed}.tsv"
        resources:
            gpu=gpu_request(1),
        conda:
            ENV
        shell:
            "hecvl evaluate --params {params.file} {params.arguments} > {log} 2>&1"
