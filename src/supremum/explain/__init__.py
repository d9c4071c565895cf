"""Why did the model decide that: word attributions of a classifier artifact's predictions
(`attribution`), on the words of the text (`words`), measured for faithfulness (`faithfulness`),
shown as JSON and an HTML page (`page`), run by `run.explain` (`supremum explain`)."""
