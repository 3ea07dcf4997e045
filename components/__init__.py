"""TFX components of the iHAS pipeline: ExampleGen, Search, Cluster, Retrain, evaluation."""
