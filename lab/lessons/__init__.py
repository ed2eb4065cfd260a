"""The tutorial path: texts, predictions and judges. No Textual here."""
