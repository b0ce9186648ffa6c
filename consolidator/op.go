package consolidator

const op = "consolidator"
