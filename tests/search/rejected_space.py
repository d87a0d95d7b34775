"""A custom search space whose settings pass every check made before a sweep starts, but that
RLlib rejects inside every trial: the network's activation is not a function torch has.

``search.space: rejected_space:sample`` (with tests/search on PYTHONPATH) gives a sweep in which
every trial fails at run time."""


def sample(trial):
    lr = trial.suggest_float("lr", 1e-4, 1e-3, log=True)
    return {"training": {"lr": lr, "num_epochs": 1, "train_batch_size_per_learner": 200,
                         "minibatch_size": 100},
            "model": {"fcnet_hiddens": [16], "fcnet_activation": "no-such-activation"},
            "env": {"window_size": 5}}
