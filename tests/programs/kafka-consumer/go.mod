module kafkaconsumer

go 1.21

require github.com/segmentio/kafka-go v0.4.47

replace github.com/segmentio/kafka-go => ./kafka-go
