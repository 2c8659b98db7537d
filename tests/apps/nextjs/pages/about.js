export async function getServerSideProps() {
  return { props: { pid: process.pid } };
}

export default function About({ pid }) {
  return <p>served by {pid}</p>;
}
