// kafkajs 2.2.4 for the e2e tests: admin (create a topic, describe its configs),
// produce `n` records with a codec, and consume `n` records as a group member,
// checking each is the next one produced, committing every 50th and the last. Prints one line of counts;
// dump prints every record of partition 0 up to the log end.
// Usage: node client.js BROKER MODE TOPIC [N] [CODEC|GROUP] [FIRST]
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')

const [broker, mode, topic, n = '0', extra = 'none', first = '0'] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'e2e', brokers: [broker], logLevel: logLevel.NOTHING })

async function admin () {
  const a = kafka.admin()
  await a.connect()
  const created = await a.createTopics({
    topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true
  })
  const described = await a.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
    includeSynonyms: false
  })
  const value = described.resources[0].configEntries[0].configValue
  if (!created || value !== '3600000') throw new Error(`created ${created}, retention.ms ${value}`)
  await a.disconnect()
  console.log('admin ok')
}

async function produce () {
  const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }
  const p = kafka.producer()
  await p.connect()
  let sent = 0
  for (let i = Number(first); i < Number(first) + Number(n); i += 50) {
    const messages = []
    for (let j = i; j < Math.min(i + 50, Number(first) + Number(n)); j++) {
      messages.push({ key: `k-${j}`, value: `v-${j}`, partition: 0 })
    }
    await p.send({ topic, acks: -1, compression: codecs[extra], messages })
    sent += messages.length
  }
  await p.disconnect()
  console.log(`produced ${sent}`)
}

async function consume () {
  const c = kafka.consumer({ groupId: extra, maxWaitTimeInMs: 100 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  let next = Number(first)
  const end = next + Number(n)
  const failure = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${next - Number(first)} of ${n} consumed`)), 60000)
    c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (next >= end) return
        if (message.value.toString() !== `v-${next}` || message.key.toString() !== `k-${next}`) {
          clearTimeout(timer)
          return reject(new Error(`expected v-${next}, got ${message.value} at ${message.offset}`))
        }
        next++
        if ((next - Number(first)) % 50 === 0 || next === end) { // each commit is a Raft write
          await c.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        }
        if (next === end) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  await failure
  await c.disconnect()
  console.log(`consumed ${next - Number(first)}`)
}

// Prints "offset key value" for every record of partition 0 from offset 0 up to the
// log end as it was at the start ("-" for a tombstone's value).
async function dump () {
  const a = kafka.admin()
  await a.connect()
  const [{ high }] = await a.fetchTopicOffsets(topic)
  await a.disconnect()
  const end = Number(high)
  const c = kafka.consumer({ groupId: `dump-${Date.now()}`, maxWaitTimeInMs: 100 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  let last = -1
  const lines = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no record after offset ${last} of ${end}`)), 60000)
    c.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        const offset = Number(message.offset)
        if (offset >= end) return
        lines.push(`${offset} ${message.key} ${message.value === null ? '-' : message.value}`)
        last = offset
        if (last + 1 >= end) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  await c.disconnect()
  console.log(lines.join('\n'))
}

const modes = { admin, produce, consume, dump }
modes[mode]().then(() => process.exit(0), (e) => { console.error('error:', e.message); process.exit(1) })
